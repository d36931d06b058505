"""The flags of the base a sampling command runs: `--pretrained` (a diffusers pipeline folder, a cached hub id,
or a bundled model) with `--device` and `--dtype`, beside the bundled `--model`; `loading.load_model` loads
either."""

from __future__ import annotations


def add_base_flags(p) -> None:
    p.add_argument("--pretrained", default=None, metavar="BASE",
                   help="a diffusers pipeline folder (SD3/SD3.5, FLUX, DiT), a hub id in the local cache, or a "
                        "bundled model; sampled with the pipeline's own encoders, scheduler and VAE")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto: a GPU when there is one)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, else fp32) | fp32 | bf16 | fp16")
    p.add_argument("--resolution", type=int, default=0, help="image side in pixels (0: the base's default)")
    p.add_argument("--force-base", action="store_true",
                   help="load an --adapter even if it was trained on another base (it is refused otherwise)")

