"""Bundled pretrained models, shipped inside the package (no hub, no download)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ThinkpixError

ROOT = Path(__file__).parent
DEFAULT_MODEL = "shapes-base"
DEFAULT_CLASS_MODEL = "shapes-dit"  # the class-conditional base, once trained and bundled


def bundled_path(name: str) -> Path:
    path = ROOT / name
    if not path.exists():
        known = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise ThinkpixError(f"no bundled model {name!r}; bundled: {', '.join(known) or 'none'}")
    return path


def resolve_model(spec: str | None, default: str = DEFAULT_MODEL) -> Path:
    """A folder path, or the name of a bundled model (default: the bundled base)."""
    spec = spec or default
    path = Path(spec)
    if path.exists():
        return path
    return bundled_path(spec)
