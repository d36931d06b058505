"""Recursive Sparse Reasoning, backbone-agnostic: config, experts, gate, routing, recursion, losses.

Knows no backbone and does not import diffusers; `thinkpix.integrations` attaches it to models.
"""

from .config import RSRConfig
from .experts import LoRAExperts
from .gate import Gate
from .losses import load_balance_loss, router_z_loss
from .module import LayerDims, RSRModule
from .outputs import RSROutput, stack_trace, total_aux_loss
from .recursion import BlockOps, rsr_attention
from .routing import Route, route_tokens

__all__ = [
    "RSRConfig", "LoRAExperts", "Gate", "load_balance_loss", "router_z_loss", "LayerDims", "RSRModule",
    "RSROutput", "stack_trace", "total_aux_loss", "BlockOps", "rsr_attention", "Route", "route_tokens",
]
