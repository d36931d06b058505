"""Lake diffusion with one token per cell: its target, its exact judge, and a tiny training run."""

import numpy as np
import torch

from thinkpix.worlds.lake import cell_diffusion as cd
from thinkpix.worlds.lake import ladder_task as task
from thinkpix.worlds.lake.ladder import Budget
from thinkpix.worlds.lake.ladder_models import arm_named
from thinkpix.worlds.lake.maps import HOLE, random_map, shortest_path

torch.set_num_threads(1)


def test_target_is_one_shortest_path_and_the_judge_accepts_every_shortest_path():
    rng = np.random.default_rng(0)
    for _ in range(20):
        grid = random_map(rng, int(rng.integers(4, 8)), int(rng.integers(2, 8)))
        n = grid.shape[0]
        x0 = cd.path_layer([grid], rng)[0, 0, :n, :n].numpy() > 0
        assert cd.is_shortest_path(x0, grid)
        other = np.zeros_like(x0)
        for cell in shortest_path(grid, rng):
            other[cell] = True
        assert cd.is_shortest_path(other, grid)
        union = task.on_shortest_path(grid)
        assert cd.is_shortest_path(union, grid) == (union.sum() == task.path_length(grid) + 1)


def test_judge_rejects_gaps_strays_holes_and_missing_ends():
    grid = random_map(np.random.default_rng(3), 5, 4)
    path = shortest_path(grid)
    drawn = np.zeros(grid.shape, dtype=bool)
    for cell in path:
        drawn[cell] = True
    gap = drawn.copy()
    gap[path[2]] = False
    no_goal = drawn.copy()
    no_goal[path[-1]] = False
    stray = drawn.copy()
    r, c = np.argwhere(~drawn & (grid != HOLE))[0]
    stray[r, c] = True
    assert cd.is_shortest_path(drawn, grid)
    assert not any(cd.is_shortest_path(d, grid) for d in (gap, no_goal, stray))


def test_training_runs_resumes_and_scores(tmp_path):
    tiny = task.Split("tiny", (4,), (2,), 2)
    budget = Budget(steps=2, batch=4, checkpoint_every=1, warmup=1)
    folder = cd.train(arm_named("rsr-every-step"), 0, tmp_path, budget, log=lambda *_: None, splits=(tiny,))
    model = cd.CellDiffusion(arm_named("rsr-every-step"), 0)
    scores = cd.score(model, steps=(1, 2), splits=(tiny,), log=lambda *_: None)
    assert set(scores["tiny"]["T"]) == {"1", "2"} and len(scores["tiny"]["T"]["1"]) == 2
    assert (folder / "train.json").is_file()
    maps, _, _ = task.encode(task.split_maps(tiny, 0))
    a = model.sample(maps, [0, 1], 2, sampler_steps=3)
    b = torch.cat([model.sample(maps[:1], [0], 2, sampler_steps=3), model.sample(maps[1:], [1], 2, sampler_steps=3)])
    torch.testing.assert_close(a, b)  # a sample does not depend on its batch-mates


def test_a_finished_run_reloads_and_validates_and_a_stack_is_sampled_once(tmp_path, monkeypatch):
    tiny = task.Split("in-range", (4,), (2, 3), 1)
    monkeypatch.setattr(cd, "VALIDATION", (tiny,))
    budget = Budget(steps=2, batch=4, checkpoint_every=1, warmup=1)
    cd.train(arm_named("stack-1"), 0, tmp_path, budget, log=lambda *_: None, splits=(tiny,))
    scores = __import__("json").loads((tmp_path / "diffusion-stack-1/seed0/scores.json").read_text())
    rows = scores["in-range"]["T"]
    assert set(rows) == {str(T) for T in cd.SCORE_STEPS if T >= 1}  # a stack has no T = 0 (no RSR to remove)
    assert len({tuple(r) for r in rows.values()}) == 1  # and ignores T: one sampling, repeated
    [written] = cd.validate(tmp_path, log=lambda *_: None)
    assert written.name == "validation.json" and cd.validate(tmp_path, log=lambda *_: None) == []
    model = cd.trained(tmp_path, arm_named("stack-1"), 0)
    assert not model.training


def test_the_compute_matched_stack_is_the_nearest_in_flops():
    arm = arm_named("rsr-refined-every-step-b2")
    matched = cd.compute_matched_stack(arm, 8)
    target = cd.forward_flops(arm, 8)
    gaps = {n: abs(cd.forward_flops(arm_named(f"stack-{n}"), 1) - target) for n in range(1, 9)}
    assert matched.name == f"stack-{min(gaps, key=gaps.get)}"
    assert cd.forward_flops(arm, 8) > cd.forward_flops(arm, 1) > cd.forward_flops(arm_named("stack-2"), 1)


def test_decoded_steps_figure_of_a_finished_run(tmp_path):
    from thinkpix.worlds.lake import cell_diffusion_figure as fig

    tiny = task.Split("tiny", (4,), (2,), 1)
    budget = Budget(steps=1, batch=2, checkpoint_every=1, warmup=1)
    cd.train(arm_named("rsr-paper"), 0, tmp_path, budget, log=lambda *_: None, splits=(tiny,))
    model = cd.trained(tmp_path, arm_named("rsr-paper"), 0)
    grids = task.split_maps(tiny, 0)
    x_t, x0_hat, truth = fig.predictions(model, grids, 0.5, steps=(0, 2))
    assert x0_hat.shape == (2, 1, task.CANVAS, task.CANVAS) and x_t.shape == truth.shape == (1, 8, 8)
    out = fig.draw(tmp_path, "rsr-paper", tmp_path / "fig.png", count=2)
    assert out.stat().st_size > 1000
