"""How RSR attaches to diffusers transformers (processors + hooks), and adapter save/load."""

from .adapters import load_rsr, save_rsr
from .attach import (attach_rsr, collect_rsr_outputs, detach_rsr, get_rsr, set_latent_steps, start_trace,
                     stop_trace)

__all__ = ["attach_rsr", "detach_rsr", "get_rsr", "set_latent_steps", "collect_rsr_outputs", "start_trace",
           "stop_trace", "save_rsr", "load_rsr"]
