"""Lake diffusion's fine-tuning protocol: adapters on a frozen base, fit to a pool of shifted maps."""

import json

import numpy as np
import pytest
import torch

from thinkpix.errors import ThinkpixError
from thinkpix.worlds.lake import cell_diffusion as cd
from thinkpix.worlds.lake import cell_finetune as ft
from thinkpix.worlds.lake import ladder_task as task
from thinkpix.worlds.lake.ladder import Budget
from thinkpix.worlds.lake.ladder_models import arm_named

torch.set_num_threads(1)
TINY = task.Split("tiny", (4,), (2,), 1)
BUDGET = Budget(steps=2, batch=4, checkpoint_every=1, warmup=1)
QUIET = {"log": lambda *_: None, "splits": (TINY,)}


@pytest.fixture(scope="module")
def base_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("base")
    cd.train(arm_named("stack-2"), 0, runs, BUDGET, **QUIET)
    return runs


def test_the_shifted_pool_is_fixed_and_shifted():
    a, b = ft.shifted_pool(), ft.shifted_pool()
    assert len(a) == ft.POOL_SIZE and all((x == y).all() for x, y in zip(a[:20], b[:20]))
    assert {g.shape[0] for g in a} == set(ft.SHIFT_SIZES)
    draw = ft.from_pool(a[:5])
    picked = draw(np.random.default_rng(0), 8)
    assert len(picked) == 8 and all(any(p is g for g in a[:5]) for p in picked)


@pytest.mark.parametrize("name", ["adapter-refined-every-step", "lora"])
def test_fine_tunes_train_only_the_adapter_and_leave_the_base(base_runs, tmp_path, name):
    base = cd.trained(base_runs, arm_named("stack-2"), 0).solver.transformer
    before = {k: v.clone() for k, v in base.state_dict().items()}
    pool = ft.shifted_pool()[:6]
    folder = ft.finetune(name, 0, "stack-2", base_runs, tmp_path, BUDGET, pool=pool, **QUIET)
    record = json.loads((folder / "train.json").read_text())
    arm, _ = ft.finetune_arm(name, base)
    model = cd.CellDiffusion(arm, 0, base)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert record["parameters"] == trainable < sum(p.numel() for p in base.parameters()) // 4
    reloaded = cd.trained(base_runs, arm_named("stack-2"), 0).solver.transformer.state_dict()
    assert all(torch.equal(before[k], reloaded[k]) for k in before)  # the base run is untouched


def test_lora_is_matched_to_the_rsr_adapter_and_lora_2x_doubles_the_steps(base_runs):
    base = cd.trained(base_runs, arm_named("stack-2"), 0).solver.transformer
    lora, budget = ft.finetune_arm("lora", base)
    _, budget2 = ft.finetune_arm("lora-2x", base)
    from thinkpix.integrations.lora import lora_parameter_count

    target = ft.rsr_adapter_parameters(base)
    per_rank = lora_parameter_count(base, [0], 1)
    assert abs(lora_parameter_count(base, [0], lora.lora_rank) - target) <= per_rank / 2
    assert budget2.steps == 2 * budget.steps
    with pytest.raises(ThinkpixError, match="not adapter-<reading>"):
        ft.finetune_arm("stack-2", base)
