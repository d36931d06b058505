"""The recursion ladder: its task's labels, its arms on real diffusers blocks, exact resume, and the
pre-registered verdict rules; plus the RSR readings it compares (switch validation, exact start)."""

import json

import numpy as np
import pytest
import torch
from rsr_backbones import BACKBONES

from thinkpix import RSRConfig, attach_rsr
from thinkpix.errors import ThinkpixError
from thinkpix.integrations import set_latent_steps
from thinkpix.worlds.lake import ladder, ladder_table
from thinkpix.worlds.lake import ladder_task as task
from thinkpix.worlds.lake.ladder_models import ARMS, Solver, arm_named
from thinkpix.worlds.lake.maps import GOAL, START, find, random_map, shortest_path

torch.set_num_threads(1)
TINY = task.Split("tiny", (4, 5), (2, 5), 2)


def test_label_is_the_union_of_all_shortest_paths():
    rng = np.random.default_rng(0)
    for _ in range(30):
        grid = random_map(rng, int(rng.integers(4, 9)), int(rng.integers(1, 8)))
        label = task.on_shortest_path(grid)
        seen = np.zeros_like(label)
        for _ in range(200):  # random shortest paths cover the union
            for cell in shortest_path(grid, rng):
                seen[cell] = True
        assert (seen == label).all()
        assert label[find(grid, START)] and label[find(grid, GOAL)]
        assert label.sum() == task.path_length(grid) + 1 or label.sum() > task.path_length(grid) + 1


def test_encode_places_the_map_top_left_and_masks_the_rest():
    rng = np.random.default_rng(1)
    grids = [random_map(rng, 4, 3), random_map(rng, 6, 5)]
    maps, target, mask = task.encode(grids)
    assert maps.shape == (2, task.KINDS, 8, 8) and target.shape == mask.shape == (2, 8, 8)
    assert (maps.sum(1) == 1).all()  # one kind per canvas cell
    assert mask[0].sum() == 16 and mask[1].sum() == 36
    assert (maps[0, 0, 4:, :] == 1).all() and (target[0][~mask[0]] == 0).all()  # outside, never on the path
    assert (task.solved(target * 20 - 10, target, mask)).all()
    flipped = target.clone()
    flipped[1, 0, 0] = 1 - flipped[1, 0, 0]
    assert task.solved(flipped * 20 - 10, target, mask).tolist() == [True, False]


def test_split_maps_are_fixed_and_cover_their_cells():
    a, b = task.split_maps(TINY, 5), task.split_maps(TINY, 5)
    assert all((x == y).all() for x, y in zip(a, b))
    assert sorted({(g.shape[0], task.path_length(g)) for g in a}) == [(4, 2), (4, 5), (5, 2), (5, 5)]
    assert any((x != y).any() for x, y in zip(a, task.split_maps(TINY, 6)))


@pytest.mark.parametrize("name", sorted(ARMS) + ["rsr-paper-m4"])
def test_every_arm_builds_and_maps_cells_to_logits(name):
    model = Solver(arm_named(name), 0)
    maps, target, mask = task.encode(task.training_maps(np.random.default_rng(0), 3))
    for T in (1, 3):
        out = model(maps, T)
        assert out.shape == (3, 8, 8) and torch.isfinite(out).all()


def test_loop_readouts_are_the_outputs_at_each_depth():
    model = Solver(arm_named("loop"), 0).eval()
    maps, _, _ = task.encode(task.training_maps(np.random.default_rng(0), 2))
    with torch.no_grad():
        outs = model.readouts(maps, 4)
        for T in (1, 2, 4):
            torch.testing.assert_close(outs[T - 1], model(maps, T))
        assert (outs[3] - outs[0]).abs().max() > 1e-4  # the loop changes the answer


def test_rsr_arm_at_depth_uses_the_attached_processors():
    model = Solver(arm_named("rsr-every-step"), 0).eval()
    maps, _, _ = task.encode(task.training_maps(np.random.default_rng(0), 2))
    with torch.no_grad():
        # B = 0 at init: the final step's W(x~) ignores the loop, so every depth gives the same answer
        torch.testing.assert_close(model(maps, 4), model(maps, 1), atol=0, rtol=0)
        for e in model.transformer.rsr.experts.values():  # trained experts carry the loop's state out
            e.B.normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
        assert (model(maps, 4) - model(maps, 1)).abs().max() > 1e-4
        torch.testing.assert_close(model(maps, 2), model(maps, 2))


def test_unknown_arm_is_refused():
    with pytest.raises(ThinkpixError, match="unknown ladder arm"):
        arm_named("rsr-nothing")
    assert arm_named("adapter-every-step").kind == "adapter"
    assert arm_named("rsr-gated-m4").rsr_config(0).num_experts == 4
    for bad in ("stack-0", "stack-x", "rsr-paper-b0", "loop-b2", "rsr-paper-q2"):
        with pytest.raises(ThinkpixError, match="unknown ladder arm"):
            arm_named(bad)


def test_deeper_arms_by_name_build_the_blocks_they_say():
    assert len(Solver(arm_named("stack-3"), 0).transformer.transformer_blocks) == 3
    model = Solver(arm_named("rsr-paper-b2"), 0)
    blocks = model.transformer.transformer_blocks
    assert len(blocks) == 2 and model.arm.rsr_config(0).layers == [0]
    from thinkpix.integrations.attach import get_rsr

    assert get_rsr(model.transformer) is not None


def test_resume_equals_the_uninterrupted_run(tmp_path):
    budget = ladder.Budget(steps=6, batch=4, checkpoint_every=3, warmup=2)
    kw = dict(splits=(TINY,), eval_steps=(1, 2), log=lambda *_: None)
    whole = ladder.train(arm_named("rsr-paper"), 0, tmp_path / "a", budget, **kw)
    ladder.train(arm_named("rsr-paper"), 0, tmp_path / "b", budget, stop_at=3, **kw)
    assert not (tmp_path / "b/rsr-paper/seed0/scores.json").exists()
    torch.manual_seed(123)  # a resume must not depend on the global generator's state at its start
    sliced = ladder.train(arm_named("rsr-paper"), 0, tmp_path / "b", budget, **kw)
    ta = json.loads((whole / "train.json").read_text())
    tb = json.loads((sliced / "train.json").read_text())
    assert ta["loss_every_50"] == tb["loss_every_50"]
    from safetensors.torch import load_file
    wa = load_file(next((whole / "checkpoints").glob("step_*")) / "model.safetensors")
    wb = load_file(next((sliced / "checkpoints").glob("step_*")) / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (whole / "scores.json").read_text() == (sliced / "scores.json").read_text()


def test_adapter_arm_needs_and_freezes_the_trained_base(tmp_path):
    budget = ladder.Budget(steps=2, batch=4, checkpoint_every=2, warmup=1)
    kw = dict(splits=(TINY,), eval_steps=(1,), log=lambda *_: None)
    with pytest.raises(ThinkpixError, match="stack-1"):
        ladder.train(arm_named("adapter-paper"), 0, tmp_path, budget, **kw)
    ladder.train(arm_named("stack-1"), 0, tmp_path, budget, **kw)
    base = ladder.frozen_base(tmp_path, 0)
    model = Solver(arm_named("adapter-paper"), 0, base)
    assert all(n.startswith("transformer.rsr.") for n, p in model.named_parameters() if p.requires_grad)
    maps, _, _ = task.encode(task.training_maps(np.random.default_rng(0), 2))
    plain = Solver(arm_named("stack-1"), 0)
    plain.transformer.load_state_dict({k: v for k, v in base.state_dict().items() if not k.startswith("rsr.")})
    with torch.no_grad():  # zero-initialised experts: the adapter starts exactly at the base, at any depth
        torch.testing.assert_close(model.eval()(maps, 3), plain.eval()(maps, 1), atol=0, rtol=0)


def _scores(gains_by_length: dict[int, float], maps: int = 100, seed: int = 0) -> dict:
    """Synthetic scores: in-range maps of each length, T=1 solving 30%, T=8 solving 30% + the gain."""
    rng = np.random.default_rng(seed)
    lengths, t1, t8 = [], [], []
    for L, g in gains_by_length.items():
        lengths += [L] * maps
        base = rng.random(maps) < 0.3
        t1 += base.astype(int).tolist()
        t8 += (base | (rng.random(maps) < g / 0.7)).astype(int).tolist()
    split = {"lengths": lengths, "sizes": [5] * len(lengths), "T": {"1": t1, "8": t8, "16": t8}}
    return {"in-range": split, "larger": split, "longer": split}


def test_verdicts_follow_the_preregistered_rules(tmp_path):
    for seed in range(3):
        for arm, g in (("loop", 0.4), ("rsr-a", 0.35), ("rsr-b", 0.0), ("rsr-c", 0.08)):
            folder = tmp_path / arm / f"seed{seed}"
            folder.mkdir(parents=True)
            (folder / "scores.json").write_text(json.dumps(_scores({4: g, 5: g, 6: g}, seed=seed)))
    result = ladder_table.tabulate(tmp_path)
    verdicts = {a: v["verdict"] for a, v in result["summary"].items()}
    assert verdicts == {"loop": "control", "rsr-a": "useful", "rsr-b": "inert", "rsr-c": "weak"}
    assert all(not p.startswith("/") for p in result["runs"])
    assert "| `rsr-a` |" in ladder_table.markdown(result)
    page = "intro\n<!-- ladder-gains -->\n\ntext\n<!-- ladder-accuracy -->\nend\n"
    once = ladder_table.fill_doc(page, result)
    assert ladder_table.markdown(result) in once and ladder_table.markdown_accuracy(result) in once
    assert ladder_table.fill_doc(once, result) == once and once.startswith("intro") and "text" in once


def test_verdict_waits_for_three_seeds_and_a_working_control(tmp_path):
    for arm, g in (("loop", 0.05), ("rsr-a", 0.3)):
        (tmp_path / arm / "seed0").mkdir(parents=True)
        (tmp_path / arm / "seed0" / "scores.json").write_text(json.dumps(_scores({4: g, 5: g, 6: g})))
    assert ladder_table.tabulate(tmp_path)["summary"]["rsr-a"]["verdict"].startswith("ladder broken")


# ----- the RSR readings the ladder compares ----------------------------------------------------------------
@pytest.mark.parametrize("bad,match", [
    (dict(final_input="middle"), "final_input"),
    (dict(loop_body="mlp"), "loop_body"),
    (dict(loop_body="block", remodulate=False), "remodulate"),
])
def test_reading_switches_are_validated(bad, match):
    with pytest.raises(ThinkpixError, match=match):
        RSRConfig(layers=[0], **bad)


@pytest.mark.parametrize("name", ["dit", "flux", "sd35"])
def test_block_loop_body_is_refused_where_it_is_not_implemented(name):
    model = BACKBONES[name].make()
    layer = 0 if name == "sd35" else 1
    if name == "sd35":
        rsr = attach_rsr(model, RSRConfig(layers=[layer], rank=4, latent_steps=2, loop_body="block"))
        with torch.no_grad(), pytest.raises(ThinkpixError, match="dual-attention"):
            model(**BACKBONES[name].inputs())
        return
    with pytest.raises(ThinkpixError, match="SD3 joint blocks only"):
        attach_rsr(model, RSRConfig(layers=[layer], rank=4, loop_body="block"))


@pytest.mark.parametrize("reading", [dict(final_input="gated"), dict(final_input="gated", base_every_step=True),
                                     dict(final_input="x0", loop_body="block")])
def test_gated_and_x0_readings_start_exactly_at_the_base(reading):
    """B = 0 and g = 0: the final step's W sees x~ and the experts add nothing, whatever the loop did."""
    bb = BACKBONES["sd3"]
    model, x = bb.make(), bb.inputs()
    with torch.no_grad():
        base = model(**x)[0]
        attach_rsr(model, RSRConfig(layers=[1], rank=4, **reading))
        for T in (1, 2, 4):
            set_latent_steps(model, T)
            torch.testing.assert_close(model(**x)[0], base, atol=0, rtol=0)


def test_presets_name_readings_and_explicit_fields_win():
    from thinkpix.rsr.config import PRESETS

    assert PRESETS["paper"] == {}
    for name, fields in PRESETS.items():
        cfg = RSRConfig.parse(f"preset={name},layers=1,2,latent_steps=3")
        assert cfg.layers == [1, 2] and cfg.latent_steps == 3
        assert all(getattr(cfg, k) == v for k, v in fields.items())
        assert RSRConfig.preset(name, [0]).to_dict() == RSRConfig(layers=[0], **fields).to_dict()
    assert RSRConfig.parse("layers=1,final_input=refined,preset=paper").final_input == "refined"
    with pytest.raises(ThinkpixError, match="unknown RSR preset"):
        RSRConfig.parse("preset=clever,layers=1")


def test_the_docs_tables_are_the_committed_results_verbatim():
    """docs/lab/recursion_ladder.md shows the tables `ladder_table.markdown*` make of the committed results."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = json.loads((root / "experiments/results/recursion_ladder.json").read_text())
    doc = (root / "docs/lab/recursion_ladder.md").read_text()
    assert ladder_table.markdown(result) in doc
    assert ladder_table.markdown_accuracy(result) in doc
    assert all(not p.startswith("/") and "~" not in p for p in result["runs"])
