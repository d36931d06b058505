"""The flags of the base a sampling command runs: `--pretrained` (a diffusers pipeline folder, a cached hub id,
or a bundled model) with `--device` and `--dtype`, beside the bundled `--model`; `loading.load_model` loads
either."""

from __future__ import annotations

from .. import declarations as d
from ..deprecation import add_aliases
from ..schema import option


def add_base_flags(p) -> None:
    option(p, "--pretrained", spec=d.PRETRAINED, metavar="BASE",
           help="a diffusers pipeline folder (SD3/SD3.5, FLUX, DiT), a hub id in the local cache, or a "
                "bundled model; sampled with the pipeline's own encoders, scheduler and VAE")
    option(p, "--device", spec=d.DEVICE, default="auto")
    option(p, "--dtype", spec=d.DTYPE, default="auto")
    option(p, "--resolution", spec=d.RESOLUTION, default=0)
    add_aliases(p, option(p, "--force_base", spec=d.FORCE_BASE), "--force-base")

