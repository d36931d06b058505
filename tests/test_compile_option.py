"""`compile: true` (training/compiling.py): the transformer's blocks are compiled in place; at the same
weights the compiled model gives the eager loss and gradients (fp32 to rounding, bf16 within bf16's
rounding); a compiled fp32 run trains to the eager run's weights with unchanged parameter names; a model
without blocks is refused in one line. The compiling tests are slow (inductor compiles C++ kernels)."""

import pytest
import torch

from thinkpix.errors import ThinkpixError
from thinkpix.precision import autocast
from thinkpix.training.compiling import compile_blocks
from thinkpix.training.loop import Trainer
from thinkpix.training.objectives import build_objective


def _loss_and_grads(objective, setting):
    with autocast(setting):
        loss, _ = objective(0, range(4))
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in objective.named_parameters() if p.grad is not None}
    objective.zero_grad(set_to_none=True)
    return loss.item(), grads


@pytest.mark.slow
@pytest.mark.parametrize("setting", ["fp32", "bf16"])
def test_compiled_blocks_give_the_eager_loss_and_gradients(tiny_cfg, setting):
    torch.manual_seed(0)
    objective = build_objective(tiny_cfg(precision=setting)).train()
    eager_loss, eager = _loss_and_grads(objective, setting)
    assert compile_blocks(objective) == len(objective.model.transformer.transformer_blocks)
    loss, grads = _loss_and_grads(objective, setting)
    assert all(b._compiled_call_impl is not None for b in objective.model.transformer.transformer_blocks)
    scale = max(g.abs().max().item() for g in eager.values())
    worst = max((grads[n] - g).abs().max().item() for n, g in eager.items()) / scale
    if setting == "fp32":
        assert loss == pytest.approx(eager_loss, rel=1e-5) and worst < 1e-4
    else:  # fused kernels keep some intermediates in fp32 where eager bf16 rounds them
        assert loss == pytest.approx(eager_loss, rel=1e-2) and worst < 5e-2


@pytest.mark.slow
def test_a_compiled_fp32_run_trains_to_the_eager_weights(tiny_cfg, tmp_path):
    runs = {}
    for compiled in (False, True):
        cfg = tiny_cfg(compile=compiled, steps=2, ckpt_every=2, out_dir=str(tmp_path / str(compiled)))
        trainer = Trainer(cfg, build_objective(cfg))
        trainer.fit()
        blocks = trainer.objective.model.transformer.transformer_blocks
        assert all((b._compiled_call_impl is not None) == compiled for b in blocks)
        runs[compiled] = {k: p.detach().clone() for k, p in trainer.params.items()}
    assert runs[True].keys() == runs[False].keys()  # names (and so checkpoints) unchanged
    assert max((runs[True][k] - runs[False][k]).abs().max().item() for k in runs[True]) < 1e-5


def test_a_model_without_blocks_is_refused():
    with pytest.raises(ThinkpixError, match="transformer_blocks"):
        compile_blocks(torch.nn.Sequential(torch.nn.Linear(2, 2)))
