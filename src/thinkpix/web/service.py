"""The models behind the page, loaded once at start and shared by every visitor.

`Service` holds the text-to-image base (bundled or `--pretrained`), one copy of it per `--adapter`,
the class-conditional DiT (with an optional RSR adapter), and an optional lake model. The page runs
one request at a time (Gradio's queue, concurrency 1), and `lock` guards the models anyway, since
latent steps are set on a shared transformer before each sample."""

from __future__ import annotations

import threading
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ThinkpixError

BASE = "base (no adapter)"


@dataclass
class Variant:
    """A text-to-image model as the page offers it: the base, or the base with one adapter."""

    name: str
    model: object
    method: str | None  # None (the base), "rsr" or "lora"

    @property
    def rsr(self) -> bool:
        return self.method == "rsr"


@dataclass
class Service:
    variants: dict[str, Variant]
    dit: object | None = None
    dit_rsr: bool = False
    lake: object | None = None
    lake_rsr: bool = False
    notes: list[str] = field(default_factory=list)  # what could not be loaded, shown on the page
    lock: threading.Lock = field(default_factory=threading.Lock)

    def variant(self, name: str) -> Variant:
        if name not in self.variants:
            raise ThinkpixError(f"unknown model {name!r}; choose one of: {', '.join(self.variants)}")
        return self.variants[name]


def _t2i(pretrained: str | None, adapter: str | None, device: str):
    from ..commands.loading import load_model

    ns = Namespace(threads=0, model=pretrained, pretrained=None, adapter=adapter, latent_steps=None,
                   device=device, dtype="auto", resolution=0, force_base=False)
    if pretrained and not (Path(pretrained) / "thinkpix.json").is_file() and not _bundled(pretrained):
        ns.pretrained = pretrained  # a diffusers pipeline folder
    return load_model(ns, "mmdit")


def _bundled(name: str) -> bool:
    from ..bundled import ROOT

    return (ROOT / name / "thinkpix.json").is_file()


def _method(adapter: str) -> str:
    from ..integrations import lora

    return "lora" if lora.is_lora_adapter(Path(adapter)) else "rsr"


def load_service(pretrained: str | None = None, adapters: list[str] | None = None, class_model: str | None = None,
                 class_adapter: str | None = None, lake_model: str | None = None, lake_adapter: str | None = None,
                 device: str = "cpu") -> Service:
    """Every model the page uses; a `ThinkpixError` for a folder that is not what its flag asks for."""
    variants = {BASE: Variant(BASE, _t2i(pretrained, None, device), None)}
    for path in adapters or []:
        name = Path(path).name if Path(path).name != "adapter" else Path(path).parent.name + "/adapter"
        while name in variants:
            name += "'"
        variants[name] = Variant(name, _t2i(pretrained, path, device), _method(path))
    service = Service(variants)
    from ..bundled import DEFAULT_CLASS_MODEL, resolve_model

    try:
        from ..integrations.methods import prepare_for_sampling
        from ..models.c2i import ClassToImage

        path = resolve_model(class_model, DEFAULT_CLASS_MODEL)
        service.dit = prepare_for_sampling(ClassToImage.load(path), path, class_adapter)
        service.dit_rsr = bool(class_adapter) and _method(class_adapter) == "rsr"
    except ThinkpixError as exc:
        if class_model or class_adapter:
            raise
        service.notes.append(f"class DiT not available: {exc}")
    if lake_model:
        from ..worlds.lake.sampling import load_lake

        service.lake = load_lake(lake_model, lake_adapter)
        service.lake_rsr = bool(service.lake.meta.get("rsr")) or (
            bool(lake_adapter) and _method(lake_adapter) == "rsr")
    elif lake_adapter:
        raise ThinkpixError("--lake_adapter needs a --lake_model")
    return service
