"""thinkpix: Recursive Sparse Reasoning (RSR) for diffusion transformers."""

from .version import __version__

__all__ = ["attach_rsr", "detach_rsr", "save_rsr", "load_rsr", "RSRConfig", "__version__"]


def __getattr__(name):  # lazy: `import thinkpix` stays cheap (no torch/diffusers import)
    if name in ("attach_rsr", "detach_rsr"):
        from .integrations import attach as _attach

        return getattr(_attach, name)
    if name in ("save_rsr", "load_rsr"):
        from .integrations import adapters as _adapters

        return getattr(_adapters, name)
    if name == "RSRConfig":
        from .rsr.config import RSRConfig

        return RSRConfig
    raise AttributeError(name)
