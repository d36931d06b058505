"""The lake model, its training and sampling: tiny end-to-end runs through the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from thinkpix.cli import main
from thinkpix.worlds.lake.sampling import generate_lake_images, load_lake
from thinkpix.worlds.lake.model import LakeModel, map_inputs
from thinkpix.worlds.lake.config import lake_config
from thinkpix.worlds.lake.training import build_lake_objective, lake_batch
from thinkpix.worlds.lake import PATH, random_map, read_cells

TINY = ["model.size=tiny", "steps=4", "batch_size=4", "log_every=2", "ckpt_every=2", "sample_every=1000",
        "optim.warmup_steps=2", "threads=1"]
ROOT = Path(__file__).resolve().parents[1]
RSR_IN = "lake.rsr=layers=0,1,experts=2,latent_steps=3,rank=2,random_depth=true"


def test_the_map_enters_as_channels_and_tokens():
    torch.manual_seed(0)
    model = LakeModel.create("tiny")
    assert model.transformer.config.in_channels == 6 and model.transformer.config.out_channels == 3
    assert model.latent_shape == (3, 32, 32)
    maps = [random_map(np.random.default_rng(s), 5, 4) for s in range(2)]
    map_x, kinds = map_inputs(maps)
    assert map_x.shape == (2, 3, 32, 32) and kinds.shape == (2, 64)
    x, t = torch.randn(2, 3, 32, 32), torch.full((2,), 0.5)
    v = model.velocity(x, t, map_x, kinds)
    assert v.shape == (2, 3, 32, 32)
    swapped = model.velocity(x, t, map_x.flip(0), kinds)  # the other map's channels only
    assert not torch.allclose(v, swapped)
    tokens_only = model.velocity(x, t, map_x, kinds.flip(0))  # the other map's tokens only
    assert not torch.allclose(v, tokens_only)


def test_batches_are_deterministic_and_rsr_trains_in_with_the_base(tmp_path):
    cfg = lake_config(None, [*TINY, f"out_dir={tmp_path}", RSR_IN])
    a, b = lake_batch(cfg, 3, range(4)), lake_batch(cfg, 3, range(4))
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and all(torch.equal(x, y) for x, y in zip(a[2], b[2]))
    assert len(a[2]) == 2  # path target: map channels and cell kinds
    objective = build_lake_objective(cfg)
    names = objective.trainable_parameters()
    assert any(".rsr." in n for n in names) and any("transformer_blocks.0.attn.to_q" in n for n in names)
    loss, _ = objective(0, range(2))
    loss.backward()
    grads = {n: p.grad for n, p in names.items()}
    assert grads["model.transformer.transformer_blocks.0.attn.to_q.weight"].abs().sum() > 0  # the base learns
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if ".rsr.experts." in n)
    rsr = objective.model.transformer.rsr
    torch.manual_seed(0)
    seen = set()
    for _ in range(30):
        rsr.begin_forward()
        seen.add(rsr.steps_for_forward())
    assert seen == {1, 2, 3}  # random depth 1..T during training


def test_config_refuses_bad_lake_keys():
    from thinkpix.errors import ThinkpixError

    for bad in (["lake.sizes=1-3"], ["lake.lengths=0-2"], ["lake.depth=-1"], ["lake.rsr=latent_steps=2"],
                ["lake.colour=1"], ["lake.path_weight=0.5"], ["lake.path_weight=nan"], ["lake.patch_context=-1"],
                ["lake.patch_context=4"]):
        with pytest.raises(ThinkpixError):
            lake_config(None, bad)


def test_patch_context_starts_as_the_plain_model_sees_neighbours_and_survives_save_load(tmp_path):
    torch.manual_seed(0)
    plain = LakeModel.create("tiny")
    torch.manual_seed(0)
    wide = LakeModel.create("tiny", patch_context=1)
    assert wide.transformer.pos_embed.proj.kernel_size == (12, 12) and wide.meta["patch_context"] == 1
    maps = [random_map(np.random.default_rng(s), 5, 4) for s in range(2)]
    map_x, kinds = map_inputs(maps)
    x, t = torch.randn(2, 3, 32, 32), torch.full((2,), 0.5)
    with torch.no_grad():
        # same at init, up to the float rounding of a convolution that also sums the zero taps
        assert torch.allclose(plain.velocity(x, t, map_x, kinds), wide.velocity(x, t, map_x, kinds), atol=1e-5)
        for p in (plain, wide):
            p.transformer.pos_embed.proj.weight.normal_()  # as after training: every tap non-zero
        moved = map_x.clone()
        moved[:, :, 0:4, 4:8] = -map_x[:, :, 0:4, 4:8]  # cell (0, 1) only
        embed = lambda m, inputs: m.transformer.pos_embed(torch.cat([x, inputs], 1))  # noqa: E731 (B, 64, D)
        # token 0 is cell (0, 0): the wide embedding sees its neighbour (0, 1), the plain one does not
        assert torch.equal(embed(plain, map_x)[:, 0], embed(plain, moved)[:, 0])
        assert not torch.allclose(embed(wide, map_x)[:, 0], embed(wide, moved)[:, 0])
        for token in (2, 8, 9, 10):  # (0, 2), (1, 0), (1, 1), (1, 2): in (0, 1)'s 3x3 window too
            assert not torch.allclose(embed(wide, map_x)[:, token], embed(wide, moved)[:, token])
        assert torch.equal(embed(wide, map_x)[:, 3], embed(wide, moved)[:, 3])  # (0, 3) is two cells away
        before = wide.velocity(x, t, map_x, kinds)
        wide.save(tmp_path / "wide")
        loaded = LakeModel.load(tmp_path / "wide")
        assert torch.equal(loaded.velocity(x, t, map_x, kinds), before)


def test_path_weight_marks_exactly_the_path_pixels_and_weight_one_is_the_plain_loss():
    from thinkpix import flow

    cfg = lake_config("configs/lake_base.yaml", [*TINY, "lake.path_weight=5", "lake.lengths=3-4"])
    objective = build_lake_objective(cfg)
    images, _, conditions = objective.batch(0, range(4))
    weight = objective.loss_weight(objective.images_to_x0(images), conditions)  # (4, 1, 32, 32)
    path_cells = [int((read_cells(im.numpy(), 8) == PATH).sum()) for im in images]
    assert weight.shape == (4, 1, 32, 32) and set(weight.unique().tolist()) == {1.0, 5.0}
    assert [int((w == 5).sum()) for w in weight] == [16 * n for n in path_cells] and min(path_cells) >= 2
    x0, noise, t = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32), torch.rand(4)
    velocity = lambda x, tt: x * 0.5  # noqa: E731  any fixed function of the input
    plain = flow.flow_loss(velocity, x0, noise, t)
    assert flow.flow_loss(velocity, x0, noise, t, torch.ones(4, 1, 32, 32)) == plain
    err = (0.5 * flow.interpolate(x0, noise, t) - (noise - x0)).pow(2)
    assert torch.allclose(flow.flow_loss(velocity, x0, noise, t, weight), (weight * err).sum() / (3 * weight.sum()))
    assert build_lake_objective(lake_config("configs/lake_base.yaml", TINY)).loss_weight(
        objective.images_to_x0(images), conditions) is None


def test_tiny_train_sample_evaluate_end_to_end(tmp_path, capsys):
    maps = tmp_path / "maps.jsonl"
    assert main(["lake", "prompts", "--out", str(maps), "--per_cell", "1", "--sizes", "4"]) == 0
    base, rsr_in = tmp_path / "base", tmp_path / "rsr_in"
    assert main(["lake", "train", "configs/lake_base.yaml", *TINY, f"out_dir={base}"]) == 0
    assert main(["lake", "train", "configs/lake_rsr.yaml", *TINY, RSR_IN, f"out_dir={rsr_in}"]) == 0
    assert (rsr_in / "final" / "rsr" / "rsr_config.json").is_file()
    for method in ("rsr", "lora"):
        assert main(["lake", "finetune", "--pretrained", str(base / "final"), "--method", method, "--output_dir",
                     str(tmp_path / method), "--rsr", "layers=0,1,experts=2,latent_steps=2,rank=2", *TINY]) == 0
    runs = {"base": ["--model", str(base / "final")],
            "rsr_in_T5": ["--model", str(rsr_in / "final"), "--latent_steps", "5"],
            "rsr_ft": ["--model", str(base / "final"), "--adapter", str(tmp_path / "rsr" / "adapter")],
            "lora": ["--model", str(base / "final"), "--adapter", str(tmp_path / "lora" / "adapter")]}
    for name, flags in runs.items():
        out = tmp_path / "samples" / name
        assert main(["lake", "sample", *flags, "--prompts", str(maps), "--out", str(out), "--steps", "2"]) == 0
        capsys.readouterr()
        assert main(["lake", "evaluate", str(out), "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["images"] == 8 and set(summary["by_length"]) == {str(L) for L in range(1, 9)}
        assert abs(sum(summary["verdicts"].values()) - 1) < 1e-9
    assert main(["lake", "generate", "--model", str(rsr_in / "final"), "--map", "S.H.,..H.,....,H..G",
                 "--latent_steps", "2", "-n", "2", "--steps", "2", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").is_file()
    assert main(["generate", "--lake", "7", "--model", str(rsr_in / "final"), "--latent_steps", "4", "-n", "1",
                 "--steps", "2", "--out", str(tmp_path / "h.png")]) == 0  # `thinkpix generate --lake`
    assert (tmp_path / "h.png").is_file()
    assert main(["generate", "--lake", "7", "--out", str(tmp_path / "y.png")]) == 2  # no lake --model
    assert main(["lake", "generate", "--model", str(base / "final"), "--map", "3", "--latent_steps", "2",
                 "--out", str(tmp_path / "x.png")]) == 2  # no RSR to think with

    # a killed `lake sample` resumes: rerunning the same command redoes only the incomplete map folders,
    # with the images of the uninterrupted run; another run's settings into that folder are refused
    out = tmp_path / "samples" / "base"
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")}
    (out / "00003" / "metadata.jsonl").unlink()  # metadata is written last: this folder was cut short
    (out / "00005" / "samples" / "0000.png").unlink()
    sample_base = ["lake", "sample", *runs["base"], "--prompts", str(maps), "--out", str(out), "--steps", "2"]
    assert main(sample_base) == 0
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")} == before
    assert main([*sample_base, "--seed", "1"]) == 2  # another run's folder
    assert main([*sample_base, "--seed", "1", "--overwrite"]) == 0
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")} != before

    # the arms table and the evaluator's must-show script, at tiny scale
    from thinkpix.analysis import lake_arms as arms
    out = tmp_path / "arms.json"
    assert arms.main(["--arm", f"base={base / 'final'}", "--arm", f"rsr_in={rsr_in / 'final'}", "--sweep",
                      "rsr_in=0,2", "--versus", "rsr_in", "--prompts", str(maps), "--steps", "1", "--threads", "1",
                      "--work", str(tmp_path / "work"), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    diff = report["paired_vs_base"]["rsr_in"]["overall"]["difference"]
    assert diff == pytest.approx(report["arms"]["rsr_in"]["overall"] - report["arms"]["base"]["overall"])
    assert report["paired_vs_rsr_in"]["base"]["overall"]["difference"] == pytest.approx(-diff)
    seed1 = {"arms": {f"{k}_s1": v for k, v in report["arms"].items()},
             "paired_vs_base_s1": {"rsr_in_s1": report["paired_vs_base"]["rsr_in"]}}  # as if another seed
    seeds = arms.seeds_markdown([report, seed1])
    both = arms._difference(report["paired_vs_base"]["rsr_in"]["overall"])
    assert f"| rsr_in - base | overall | {both} | {both} |" in seeds  # seed suffixes folded into one row
    in_range = arms._cell(report["arms"]["base"]["by_split"]["in-range"])
    assert f"| base | in-range | {in_range} | {in_range} |" in seeds
    assert set(report["sweeps"]["rsr_in"]) == {"0", "2"} and report["sweeps"]["rsr_in"]["0"]["paired_vs_T0"] is None
    assert report["sweeps"]["rsr_in"]["2"]["seconds_per_image"] > 0
    from thinkpix.analysis import lake_figures as figures  # the routing figure: layers x diffusion steps, one tile per latent step
    g = random_map(np.random.default_rng(3), 4, 3)
    rows, sample = figures.routing_over_sampling(load_lake(rsr_in / "final"), g, seed=0, steps=3, at=(0, 2))
    assert len(rows) == 2 * 2 and all(len(r) == 3 for r in rows) and rows[0][0].shape == (32, 32, 3)
    assert {int(v) for r in rows for im in r for v in np.unique(im)} <= {0, 255}  # two experts: black or white
    assert sample.shape == (32, 32, 3)
    figures.routing(str(rsr_in / "final"), None, str(tmp_path / "routing.png"))
    assert (tmp_path / "routing.png").is_file()
    from thinkpix.analysis import lake_evaluator as evaluator
    assert evaluator.main(["--prompts", str(maps), "--out", str(tmp_path / "ev.json")]) == 0
    must = json.loads((tmp_path / "ev.json").read_text())["must_show"]
    assert must["ground_truth"]["judged_correct"] == 1.0
    assert all(b["judged_correct"] == 0.0 for b in must["breaks"].values())


def test_position_target_trains_samples_and_evaluates(tmp_path, capsys):
    maps = tmp_path / "pos.jsonl"
    assert main(["lake", "prompts", "--target", "position", "--per_cell", "1", "--sizes", "4", "--out", str(maps)]) == 0
    run = tmp_path / "pos"
    assert main(["lake", "train", "configs/lake_base.yaml", *TINY, "lake.target=position", f"out_dir={run}"]) == 0
    assert load_lake(run / "final").target == "position"
    assert main(["lake", "sample", "--model", str(run / "final"), "--prompts", str(maps), "--out",
                 str(tmp_path / "s"), "--steps", "1"]) == 0
    capsys.readouterr()
    assert main(["lake", "evaluate", str(tmp_path / "s"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 7
    assert main(["lake", "generate", "--model", str(run / "final"), "--map", "2", "-k", "2", "-n", "1",
                 "--steps", "1", "--out", str(tmp_path / "p.png")]) == 0
    path_maps = tmp_path / "path.jsonl"
    assert main(["lake", "prompts", "--per_cell", "1", "--sizes", "4", "--out", str(path_maps)]) == 0
    assert main(["lake", "sample", "--model", str(run / "final"), "--prompts", str(path_maps), "--out",
                 str(tmp_path / "x"), "--steps", "1"]) == 2  # a path set for a position model


def test_exported_rsr_model_samples_like_the_trained_one(tmp_path):
    from thinkpix.training.loop import Trainer

    cfg = lake_config(None, [*TINY, f"out_dir={tmp_path}", RSR_IN])
    trainer = Trainer(cfg, build_lake_objective(cfg))
    trainer.fit()
    trainer.export(tmp_path / "final")
    live = trainer.objective.model.eval()
    loaded = load_lake(tmp_path / "final", latent_steps=3)
    live.transformer.rsr.set_latent_steps(3)
    maps = [random_map(np.random.default_rng(s), 4, 3) for s in range(3)]
    a = generate_lake_images(live, maps, seed=5, steps=2)
    b = generate_lake_images(loaded, maps, seed=5, steps=2)
    assert torch.equal(a, b)
    c = generate_lake_images(load_lake(tmp_path / "final", latent_steps=0), maps, seed=5, steps=2)
    assert not torch.equal(a, c)  # T changes the network
