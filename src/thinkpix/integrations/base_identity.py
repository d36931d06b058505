"""Which base an adapter belongs to: the base's name (a pipeline folder, hub id or bundled folder) and
a sha256 of its transformer config. `rsr_config.json` records it at save time; `load_rsr` refuses an
adapter whose recorded config hash differs from the transformer it is loaded into, unless forced.

The config hash tells apart bases of different architecture (SD3 vs SD3.5, another depth, other
widths, a different patch size ...) even where every RSR layer has the same widths. Two bases with the
same config but different weights (a base and its fine-tune) share the hash; the recorded name says
which one the adapter was trained on.
"""

from __future__ import annotations

import hashlib
import json

from torch import nn

from thinkpix.errors import ThinkpixError


def transformer_config(transformer: nn.Module) -> dict:
    """The transformer's diffusers config without bookkeeping keys (`_name_or_path`, versions ...)."""
    config = getattr(transformer, "config", None) or {}
    return json.loads(json.dumps({k: v for k, v in dict(config).items() if not k.startswith("_")},
                                 sort_keys=True, default=str))  # tuples -> lists, as read back from JSON


def config_sha256(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def base_identity(transformer: nn.Module, name: str | None = None) -> dict:
    """{name, class, config_sha256, config} of the base `transformer` belongs to."""
    config = transformer_config(transformer)
    name = name or dict(getattr(transformer, "config", None) or {}).get("_name_or_path") or ""
    return {"name": str(name), "class": type(transformer).__name__, "config_sha256": config_sha256(config),
            "config": config}


def check_base(saved: dict | None, transformer: nn.Module, where, force: bool = False) -> str | None:
    """Refuse (ThinkpixError) an adapter recorded for another base; with `force`, return the warning
    text instead. Adapters saved before identities were recorded (`saved` None) pass."""
    if not saved:
        return None
    here = transformer_config(transformer)
    if saved.get("config_sha256") == config_sha256(here):
        return None
    old = saved.get("config") or {}
    keys = sorted(k for k in set(old) | set(here) if old.get(k) != here.get(k))
    diff = ", ".join(f"{k}: {old.get(k)!r} -> {here.get(k)!r}" for k in keys[:6])
    message = (f"{where}: adapter was trained on base {saved.get('name') or '?'} ({saved.get('class')}, transformer "
               f"config sha256 {str(saved.get('config_sha256'))[:12]}); this transformer's config differs ({diff})")
    if not force:
        raise ThinkpixError(message + "; load it anyway with force_base=True (CLI: --force_base)")
    return message + "; loaded anyway (forced)"
