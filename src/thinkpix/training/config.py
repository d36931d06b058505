"""Training configuration: dataclasses, loaded from YAML, with dotted command-line overrides.

    cfg = load_config("configs/base_demo.yaml", ["optim.lr=5e-4", "steps=2000"])

Unknown keys, wrong types and out-of-range values raise `ThinkpixError` naming the key.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ThinkpixError
from ..validation import config_ranges


@dataclass
class ModelConfig:
    kind: str = "mmdit"  # mmdit (text-to-image) | dit (class-conditional) | autoencoder | features (FD network)
    size: str = "tiny"  # a name from thinkpix.models.registry
    space: str = "pixel"  # pixel | latent (needs `autoencoder`); mmdit and dit only
    autoencoder: str = ""  # folder of a trained autoencoder (latent space)
    text_encoder: str = "minilm"  # minilm (frozen, offline) | words (small learned encoder, tests); mmdit only
    canvas: int = 32
    rsr: str = ""  # RSR trained in from the start (base trainable), e.g. "layers=2,3,experts=2,latent_steps=4,random_depth=true"


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    warmup_steps: int = 200
    schedule: str = "constant"  # constant | cosine (after warm-up)
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


@dataclass
class FinetuneConfig:
    """Adapter-only fine-tuning of a frozen base (method none = train from scratch)."""

    base: str = ""  # model folder or bundled name
    method: str = "none"  # none | rsr | lora (the paper's SFT baseline) | full (the whole transformer trains further)
    rsr: str = ""  # RSRConfig spec, e.g. "layers=2,3,experts=2,latent_steps=2,rank=8"
    lora_layers: str = ""  # LoRA blocks, e.g. "2,3" (default: the RSR spec's layers)
    lora_rank: int = 0  # 0: the rank whose parameter count matches the RSR spec
    gate_lr_mult: float = 1.0  # RSR: learning rate of the gates = optim.lr * this (own AdamW group)
    expert_lr_mult: float = 1.0  # RSR: learning rate of the experts = optim.lr * this


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    out_dir: str = "runs/default"
    steps: int = 1000
    batch_size: int = 64  # global batch (split across data-parallel processes)
    seed: int = 0
    ema_decay: float = 0.999
    cond_dropout: float = 0.1  # share of captions (class labels) replaced by the empty prompt (null class), for CFG
    data_pool: int = 0  # 0: the infinite stream; N: a fixed set of N samples, seen for many epochs
    validate_every: int = 0  # steps between validation-loss (+ RSR instrument) records in metrics.jsonl; 0: off
    validation_samples: int = 64  # size of the fixed validation set (held out, disjoint from data/eval prompts)
    data_mix: str = ""  # text: weights of the stream's kinds, e.g. "position=2,free=1"; class: of colours and shapes, e.g. "circle=3" ("" = default)
    threads: int = 0  # torch threads per process; 0 = leave torch's default
    precision: str = "fp32"  # fp32 | bf16 (autocast; weights, optimiser, EMA, losses stay fp32) | auto (thinkpix.precision)
    log_every: int = 25
    sample_every: int = 1000
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    grad_checkpointing: bool = False


VALID_CHOICES = {
    "model.kind": ("mmdit", "dit", "autoencoder", "features"),
    "model.space": ("pixel", "latent"),
    "model.text_encoder": ("minilm", "words"),
    "model.canvas": (32, 64),
    "optim.schedule": ("constant", "cosine"),
    "finetune.method": ("none", "rsr", "lora", "full"),
    "precision": ("fp32", "bf16", "auto"),
}


def _coerce(value, typ, key: str):
    if isinstance(typ, str):
        typ = {"int": int, "float": float, "str": str, "bool": bool}[typ]
    if typ in (int, float) and isinstance(value, bool):  # YAML `steps: true` is no number
        raise ThinkpixError(f"config key {key!r}: expected {'an integer' if typ is int else 'a number'}, got {value!r}")
    if typ is str and (value is None or isinstance(value, (bool, dict, list))):
        raise ThinkpixError(f"config key {key!r}: expected text, got {value!r}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ThinkpixError(f"config key {key!r}: expected true/false, got {value!r}")
    if typ is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        if typ is int and isinstance(value, str):
            return int(float(value)) if float(value).is_integer() else int(value)
        out = typ(value)
    except (TypeError, ValueError):
        raise ThinkpixError(f"config key {key!r}: expected {typ.__name__}, got {value!r}") from None
    if typ is int and isinstance(value, float) and not value.is_integer():
        raise ThinkpixError(f"config key {key!r}: expected an integer, got {value!r}")
    return out


def apply_mapping(obj, data: dict, prefix: str = "") -> None:
    """Set the dataclass `obj`'s fields from a nested mapping; ThinkpixError naming an unknown key or bad value."""
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise ThinkpixError(f"unknown config key {full!r}; known: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ThinkpixError(f"config key {full!r} is a section; give its fields")
            apply_mapping(current, value, full + ".")
        else:
            setattr(obj, key, _coerce(value, hints[key], full))


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def validate(cfg: TrainConfig) -> TrainConfig:
    for key, choices in VALID_CHOICES.items():
        if _get(cfg, key) not in choices:
            raise ThinkpixError(f"config key {key!r}: {_get(cfg, key)!r} is not one of {list(choices)}")
    config_ranges(cfg)  # numbers (NaN, ranges), data-mix weights, text, a writable out_dir
    if cfg.data_mix:
        from ..worlds.classes.sets import CLASS_PARTS
        from ..worlds.shapes.stream import DEFAULT_MIX
        from .data import parse_mix

        try:
            names = set(parse_mix(cfg.data_mix))
        except ValueError:
            raise ThinkpixError(f"config key 'data_mix': weights must be numbers, got {cfg.data_mix!r}") from None
        class_names = {part for pair in CLASS_PARTS for part in pair}  # colours and shapes
        if not (names <= set(DEFAULT_MIX) or names <= class_names):
            raise ThinkpixError(f"config key 'data_mix': {sorted(names)} is neither a text-stream mix (kinds: "
                                f"{list(DEFAULT_MIX)}) nor a class mix (colours and shapes: {sorted(class_names)})")
    if cfg.model.rsr:
        from ..rsr.config import RSRConfig

        if RSRConfig.parse(cfg.model.rsr).latent_steps < 1:  # a ThinkpixError if malformed
            raise ThinkpixError("config key 'model.rsr': steps=0 is the plain model, with no recursion to train; "
                                "give latent steps >= 1")
        if cfg.finetune.method != "none":
            raise ThinkpixError("model.rsr (RSR trained in) and finetune.method (an adapter on a frozen base) exclude each other")
        if cfg.model.kind not in ("mmdit", "dit"):
            raise ThinkpixError(f"config key 'model.rsr' needs model.kind mmdit or dit, not {cfg.model.kind!r}")
    if cfg.finetune.method != "none":
        if not cfg.finetune.base:
            raise ThinkpixError("config key 'finetune.base' is required for fine-tuning (a model folder or bundled name)")
        if cfg.finetune.method == "full":
            return cfg  # the base trained further: no adapter spec
        if not cfg.finetune.rsr and not (cfg.finetune.method == "lora" and cfg.finetune.lora_layers and cfg.finetune.lora_rank):
            raise ThinkpixError("config key 'finetune.rsr' is required (e.g. layers=2,3,experts=2,latent_steps=2); "
                                "a LoRA run without it needs finetune.lora_layers and finetune.lora_rank")
        if cfg.finetune.rsr:
            from ..rsr.config import RSRConfig

            spec = RSRConfig.parse(cfg.finetune.rsr)  # a ThinkpixError if malformed, before the base loads
            if cfg.finetune.method == "rsr" and spec.latent_steps < 1:
                raise ThinkpixError("--rsr / config key 'finetune.rsr': steps=0 is the base model, with nothing to "
                                    "train; fine-tuning needs latent steps >= 1")
        return cfg  # the model section comes from the base model
    if cfg.model.kind in ("mmdit", "dit") and cfg.model.space == "latent" and not cfg.model.autoencoder:
        raise ThinkpixError("config key 'model.autoencoder' is required when model.space is 'latent'")
    from ..models.registry import size_config  # late import: the registry imports torch

    try:
        size_config(cfg.model.kind, cfg.model.size)
    except KeyError as exc:
        raise ThinkpixError(f"config key 'model.size': {exc.args[0]}") from None
    return cfg


def parse_overrides(overrides: list[str]) -> dict:
    nested: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ThinkpixError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw else ""
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def config_from_dict(data: dict, overrides: list[str] = ()) -> TrainConfig:
    cfg = TrainConfig()
    apply_mapping(cfg, data or {})
    apply_mapping(cfg, parse_overrides(list(overrides)))
    return validate(cfg)


def read_config_file(path: str | Path | None) -> dict:
    """A YAML config file's mapping ({} for no file); ThinkpixError for a missing, undecodable or
    malformed file. Shared by every config kind (training, fine-tuning, the lake world)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.exists():
        raise ThinkpixError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except UnicodeDecodeError:
        raise ThinkpixError(f"{path}: not valid UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise ThinkpixError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except ThinkpixError as exc:  # a duplicate key
        raise ThinkpixError(f"{path}: {exc}") from None
    if data is None:  # a 0-byte or comment-only file (or one cut short before its first key)
        raise ThinkpixError(f"{path}: holds no config keys (empty or only comments); refusing to train the defaults")
    if not isinstance(data, dict):
        raise ThinkpixError(f"{path}: top level must be a mapping of config keys")
    if not data:
        raise ThinkpixError(f"{path}: an empty mapping; refusing to train the defaults")
    return data


class _StrictLoader(yaml.SafeLoader):
    """yaml's safe loader that refuses a key given twice in one mapping (plain YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ThinkpixError(f"line {key_node.start_mark.line + 1}: key {key!r} given twice")
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    return config_from_dict(read_config_file(path), overrides)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
