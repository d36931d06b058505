"""`compile: true`: `torch.compile` (inductor, mode default) of every transformer block the trainer runs.

Regional compilation: each block of `transformer.transformer_blocks` is compiled in place
(`nn.Module.compile`), so the blocks of one kind share one compiled graph, parameter names and checkpoints
are unchanged, and the first training step pays the compile (about a minute of CPU at the demo size;
docs/training.md, torch.compile). Dynamo's limit on graphs per function is raised: training and sampling,
fp32 and bf16, and the last block of an SD3 model (context_pre_only) each need their own graph, and past
the limit a block would silently run uncompiled.
"""

from __future__ import annotations

from torch import nn

from ..errors import ThinkpixError

RECOMPILE_LIMIT = 64


def compile_blocks(model: nn.Module) -> int:
    """Compile every block of every `transformer_blocks` list inside `model`; -> the number compiled."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(RECOMPILE_LIMIT, getattr(torch._dynamo.config, name)))
    blocks = [b for m in model.modules() if isinstance(getattr(m, "transformer_blocks", None), nn.ModuleList)
              for b in m.transformer_blocks]
    if not blocks:
        raise ThinkpixError("compile: true needs a transformer with `transformer_blocks` (SD3, DiT, FLUX); "
                            "this model has none")
    for block in blocks:
        block.compile()
    return len(blocks)
