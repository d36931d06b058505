"""The class-conditional track (issue 5): dataset, DiT bundle, training / fine-tuning / generation
through the CLI, class accuracy, the feature network and the Fréchet distance. Tiny and fast."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from thinkpix.cli import main
from tiny_runs import assert_parameter_matched, finetune_both
from thinkpix.errors import ThinkpixError
from thinkpix.worlds.classes.evaluation import class_accuracy, judge
from thinkpix.evaluation.frechet import (feature_statistics, frechet_between, frechet_distance, subsample_frechet,
                                         subsample_interval)
from thinkpix.models.c2i import ClassToImage
from thinkpix.sampling import generate_class_images
from thinkpix.training.config import config_from_dict
from thinkpix.training.data import class_batch
from thinkpix.worlds.classes.sets import CLASSES, class_index, heldout_set
from thinkpix.worlds.shapes.palette import BACKGROUND, COLORS
from thinkpix.worlds.shapes.scene import SceneObject, render

ROOT = Path(__file__).resolve().parents[1]


# ----- the dataset -----------------------------------------------------------------------------------
def test_classes_are_colour_x_shape_in_a_fixed_order():
    assert len(CLASSES) == 24 and len(set(CLASSES)) == 24
    assert CLASSES[:4] == ("red circle", "red square", "red triangle", "orange circle")
    assert class_index("White  Triangle") == 23
    with pytest.raises(ThinkpixError, match="unknown class 'red hexagon'; known: red circle, red square"):
        class_index("red hexagon")


def test_class_batch_is_deterministic_per_sample_and_covers_every_class():
    labels, images, dropped, seeds = class_batch(0, 5, range(8), 32, 0.5)
    again = class_batch(0, 5, range(8), 32, 0.5)
    assert torch.equal(labels, again[0]) and torch.equal(images, again[1]) and torch.equal(dropped, again[2])
    # data-parallel halves make the same global batch
    lo, hi = class_batch(0, 5, range(4), 32, 0.5), class_batch(0, 5, range(4, 8), 32, 0.5)
    assert torch.equal(torch.cat([lo[1], hi[1]]), images) and torch.equal(torch.cat([lo[0], hi[0]]), labels)
    assert not torch.equal(class_batch(0, 6, range(8), 32, 0.5)[1], images)
    assert images.shape == (8, 32, 32, 3) and images.dtype == torch.uint8
    many, pics, drops, _ = class_batch(1, 0, range(480), 32, 0.1)
    assert set(many.tolist()) == set(range(24))
    assert 0.03 < drops.float().mean() < 0.2
    for label, image in zip(many[:48].tolist(), pics[:48].numpy()):  # one object of the class's colour
        colours = {tuple(c) for c in image.reshape(-1, 3).tolist()} - {BACKGROUND}
        assert colours == {COLORS[CLASSES[label].split()[0]]}


def test_class_mix_reweights_classes_and_refuses_unknown_names():
    from thinkpix.training.data import world_batch
    from thinkpix.worlds.classes.sets import class_weights

    w = class_weights({"circle": 3.0, "green": 2.0})
    assert w.shape == (24,) and w.sum() == pytest.approx(1.0)
    assert w[CLASSES.index("green circle")] == pytest.approx(6 * w[CLASSES.index("red square")])
    assert class_weights(None) is None
    # the default (no mix) draws exactly what it drew before the option existed: same rng calls
    assert torch.equal(class_batch(0, 5, range(8), 32, 0.5, "")[1], class_batch(0, 5, range(8), 32, 0.5)[1])
    labels = class_batch(3, 0, range(600), 32, 0.0, "circle=4")[0]
    circles = np.isin(labels.numpy(), [i for i, c in enumerate(CLASSES) if c.endswith("circle")]).mean()
    assert 0.6 < circles < 0.73  # expected 4 / 6 = 0.667 (uniform: 1/3)
    with pytest.raises(ThinkpixError, match="unknown name"):
        class_batch(0, 0, range(2), 32, 0.0, "position=2")
    with pytest.raises(ThinkpixError, match="unknown kind"):
        world_batch(0, 0, range(2), 32, 0.0, "circle=2")
    with pytest.raises(ThinkpixError, match="neither a text-stream mix"):
        config_from_dict({"model": {"kind": "dit", "size": "tiny"}, "data_mix": "circle=2,position=1"})


def test_heldout_set_is_balanced_deterministic_and_seeded():
    labels, images = heldout_set(48, seed=0)
    assert labels.tolist() == list(range(24)) * 2
    assert np.array_equal(images, heldout_set(48, seed=0)[1])
    assert not np.array_equal(images, heldout_set(48, seed=1)[1])
    assert np.array_equal(heldout_set(5, seed=0)[1], images[:5])  # image i depends only on (seed, i)


# ----- the bundle and sampling -----------------------------------------------------------------------
def _tiny_model(seed=0):
    torch.manual_seed(seed)
    return ClassToImage.create("tiny", "pixel").eval()


def test_dit_keeps_the_null_row_but_never_drops_labels_itself():
    model = _tiny_model()
    for block in model.transformer.transformer_blocks:
        table = block.norm1.emb.class_embedder
        assert table.embedding_table.num_embeddings == 25 and table.dropout_prob == 0.0
        torch.nn.init.normal_(table.embedding_table.weight)  # make labels matter at init
        torch.nn.init.normal_(block.norm1.linear.weight, std=0.1)
    torch.nn.init.normal_(model.transformer.proj_out_2.weight, std=0.1)
    model.train()
    x, t = torch.randn(6, *model.latent_shape), torch.rand(6)
    labels = torch.tensor([0, 1, 2, 3, 23, model.null_label])
    a, b = model.velocity(x, t, labels), model.velocity(x, t, labels)
    assert torch.equal(a, b)  # no random label drop in training mode
    null = model.velocity(x, t, torch.full_like(labels, model.null_label))
    assert not torch.allclose(a[:5], null[:5]) and torch.equal(a[5], null[5])


def test_class_sampling_is_deterministic_per_seed_and_batch_independent():
    model = _tiny_model()
    labels = [0, 5, 10, 23]
    full = generate_class_images(model, labels, seed=3, steps=3, guidance=2.0)
    assert torch.equal(full, generate_class_images(model, labels, seed=3, steps=3, guidance=2.0))
    alone = generate_class_images(model, labels[2:3], seed=5, steps=3, guidance=2.0)  # image i: seed s + i
    assert (alone[0].int() - full[2].int()).abs().max() <= 1
    pairs = generate_class_images(model, labels, seed=3, steps=3, guidance=2.0, batch_size=2)
    assert (pairs.int() - full.int()).abs().max() <= 1
    assert not torch.equal(generate_class_images(model, labels, seed=4, steps=3, guidance=2.0), full)


def test_bundle_round_trip_and_kind_checks(tmp_path):
    from thinkpix.models.t2i import TextToImage

    model = _tiny_model()
    model.save(tmp_path / "dit")
    again = ClassToImage.load(tmp_path / "dit")
    x, t, y = torch.randn(2, *model.latent_shape), torch.tensor([0.2, 0.7]), torch.tensor([3, 24])
    torch.testing.assert_close(again.velocity(x, t, y), model.velocity(x, t, y), rtol=0, atol=0)
    assert again.classes == list(CLASSES) and again.label_of("blue square") == 13
    with pytest.raises(ThinkpixError, match="class-conditional model \\(kind 'dit'\\), not a text-to-image"):
        TextToImage.load(tmp_path / "dit")
    TextToImage.create("tiny", "pixel", "words").save(tmp_path / "t2i")
    with pytest.raises(ThinkpixError, match="text-to-image model \\(kind 'mmdit'\\), not a class-conditional"):
        ClassToImage.load(tmp_path / "t2i")


def test_config_validates_the_dit_kind():
    cfg = config_from_dict({"model": {"kind": "dit", "size": "demo", "space": "pixel"}})
    assert cfg.model.kind == "dit"
    with pytest.raises(ThinkpixError, match="unknown size 'huge' for dit; known: tiny, small, demo"):
        config_from_dict({"model": {"kind": "dit", "size": "huge"}})
    with pytest.raises(ThinkpixError, match="model.autoencoder' is required"):
        config_from_dict({"model": {"kind": "dit", "space": "latent"}})


def test_shipped_configs_load_and_latent_space_works():
    from thinkpix.bundled import bundled_path
    from thinkpix.training.config import load_config

    demo = load_config(ROOT / "configs" / "dit_demo.yaml")
    assert (demo.model.kind, demo.model.size, demo.model.space) == ("dit", "demo", "latent")
    assert load_config(ROOT / "configs" / "features_demo.yaml").model.kind == "features"
    assert load_config(ROOT / "configs" / "finetune_dit.yaml").finetune.rsr.startswith("layers=4,5")
    torch.manual_seed(0)
    model = ClassToImage.create("tiny", "latent", autoencoder=str(bundled_path("shapes-autoencoder"))).eval()
    assert model.latent_shape == (8, 8, 8) and model.transformer.config.patch_size == 1
    assert generate_class_images(model, [7], steps=1).shape == (1, 32, 32, 3)


def test_class_objective_overfits_one_batch(tmp_path):
    from thinkpix.training.loop import Trainer
    from thinkpix.training.objectives import ClassFlowObjective, build_objective

    cfg = config_from_dict({"model": {"kind": "dit", "size": "tiny", "space": "pixel"}, "out_dir": str(tmp_path),
                            "batch_size": 8, "cond_dropout": 0.0, "optim": {"lr": 3e-3, "warmup_steps": 1}})
    trainer = Trainer(cfg, build_objective(cfg))
    assert isinstance(trainer.objective, ClassFlowObjective)
    losses = []
    for _ in range(60):
        trainer.optimizer.zero_grad()
        loss, _ = trainer.module(0, range(8))  # always step 0's batch
        loss.backward()
        trainer.optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.65 * losses[0]  # (tiny pixel-space DiT: width 16 for 48-value patches, so it plateaus)


# ----- the CLI: train, generate, finetune ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dit(tmp_path_factory):
    out = tmp_path_factory.mktemp("dit")
    assert main(["train", str(ROOT / "configs" / "tiny_dit.yaml"), f"out_dir={out}", "steps=3", "ckpt_every=3"]) == 0
    assert json.loads((out / "final" / "thinkpix.json").read_text())["kind"] == "dit"
    return out / "final"


def test_generate_class_writes_a_grid(tiny_dit, tmp_path, capsys):
    out = tmp_path / "grid.png"
    argv = ["generate", "--class", "red circle", "-n", "3", "--model", str(tiny_dit), "--steps", "2", "--upscale", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "'red circle'" in capsys.readouterr().out
    assert Image.open(out).size == (3 * 32 + 4 * 2, 32 + 2 * 2)
    assert main([*argv, "--out", str(tmp_path / "again.png")]) == 0  # same seed, same images
    assert Image.open(out).tobytes() == Image.open(tmp_path / "again.png").tobytes()


@pytest.mark.parametrize("argv, message", [
    (["generate", "--class", "red hexagon"], "unknown class 'red hexagon'; known: red circle, red square"),
    (["generate", "a photo of a red circle"], "is a class-conditional model: choose a class with --class"),
    (["generate", "a red circle", "--class", "red circle"], "give a PROMPT or --class NAME"),
    (["sample", "--prompts", str(ROOT / "data" / "eval" / "geneval.jsonl"), "--out", "o"], "class-conditional"),
])
def test_class_cli_errors_are_one_line(tiny_dit, argv, message, capsys):
    assert main([*argv, "--model", str(tiny_dit)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_generate_class_refuses_a_text_to_image_model(tmp_path, capsys):
    from thinkpix.models.t2i import TextToImage

    TextToImage.create("tiny", "pixel", "words").save(tmp_path / "t2i")
    assert main(["generate", "--class", "red circle", "--model", str(tmp_path / "t2i")]) == 2
    assert "is a text-to-image model" in capsys.readouterr().err


def test_sample_classes_writes_a_folder_per_class(tiny_dit, tmp_path):
    out = tmp_path / "classes"
    assert main(["sample", "--classes", "--images_per_prompt", "2", "--model", str(tiny_dit), "--steps", "1",
                 "--out", str(out)]) == 0
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == 24 and folders[0] == "00_red_circle" and folders[-1] == "23_white_triangle"
    assert sorted(p.name for p in (out / "13_blue_square").iterdir()) == ["0000.png", "0001.png"]


@pytest.fixture(scope="module")
def dit_adapters(tiny_dit, tmp_path_factory):
    return finetune_both(tiny_dit, tmp_path_factory.mktemp("dit_ft"))


def test_finetune_rsr_and_lora_on_a_dit_base(tiny_dit, dit_adapters):
    from safetensors.torch import load_file

    rsr, lora = dit_adapters
    assert json.loads((rsr / "rsr_config.json").read_text())["backbone"]["name"] == "dit"
    record = json.loads((lora / "lora_config.json").read_text())
    assert record["targets"][0] == "transformer_blocks.0.attn1.to_q" and len(record["targets"]) == 6
    assert_parameter_matched(rsr, lora)
    assert any(v.abs().max() > 0 for k, v in load_file(lora / "pytorch_lora_weights.safetensors").items() if "lora_B" in k)
    metrics = [json.loads(x) for x in open(rsr.parent / "metrics.jsonl")]
    assert "routing_entropy" in metrics[-1] and len(metrics[-1]["expert_usage"]) == 2


def test_generate_class_with_adapters(tiny_dit, dit_adapters, tmp_path):
    rsr, lora = dit_adapters
    base = ["generate", "--class", "green triangle", "-n", "2", "--model", str(tiny_dit), "--steps", "2"]
    assert main([*base, "--out", str(tmp_path / "base.png")]) == 0
    assert main([*base, "--adapter", str(rsr), "--latent_steps", "0", "--out", str(tmp_path / "t0.png")]) == 0
    assert Image.open(tmp_path / "t0.png").tobytes() == Image.open(tmp_path / "base.png").tobytes()
    assert main([*base, "--adapter", str(rsr), "--latent_steps", "3", "--out", str(tmp_path / "t3.png")]) == 0
    assert main([*base, "--adapter", str(lora), "--out", str(tmp_path / "lora.png")]) == 0
    # (that adapters change the images is checked on the text-to-image model, test_cli_model.py: this
    # 3-step DiT's adaLN-Zero attention gates are still ~0 and its images saturated, so they cannot show it)


# ----- class accuracy ----------------------------------------------------------------------------------
def test_class_accuracy_is_exact_on_renders():
    labels, images = heldout_set(96, seed=2)
    assert class_accuracy(images, labels)["accuracy"] == 1.0
    assert class_accuracy(images, (labels + 1) % 24)["accuracy"] == 0.0  # same colour, other shape (or colour)
    assert class_accuracy(images, (labels + 3) % 24)["accuracy"] == 0.0  # same shape, other colour
    two = render([SceneObject("circle", "red", 2, 2, 9), SceneObject("square", "blue", 18, 18, 9)])
    assert judge(two, CLASSES.index("red circle")) == (False, "2 objects")
    assert judge(render([]), 0) == (False, "0 objects")
    result = class_accuracy(images, labels)
    assert result["n"] == 96 and set(result["per_class"]) == set(CLASSES) and result["ci95"] == [1.0, 1.0]


# ----- the Fréchet distance -----------------------------------------------------------------------------
def _closed_form(mu1, s1, mu2, s2):
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), square roots by eigendecomposition."""
    def psd_sqrt(m):
        w, v = np.linalg.eigh(m)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    r = psd_sqrt(s1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * psd_sqrt(r @ s2 @ r)))


def test_frechet_distance_matches_the_gaussian_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_closed_form(mu1, s1, mu2, s2), rel=1e-9)
    # diagonal case by hand: sum (mu diff)^2 + sum (sqrt(s1) - sqrt(s2))^2
    d1, d2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = 3 * 1.0 + ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum()
    assert frechet_distance(np.zeros(3), np.diag(d1), np.ones(3), np.diag(d2)) == pytest.approx(expected)
    # estimated from samples
    x = rng.multivariate_normal(mu1, s1, size=40_000)
    y = rng.multivariate_normal(mu2, s2, size=40_000)
    assert frechet_between(x, y) == pytest.approx(_closed_form(mu1, s1, mu2, s2), rel=0.05)


def test_frechet_distance_of_identical_sets_is_zero():
    x = np.random.default_rng(1).normal(size=(500, 16))
    assert abs(frechet_between(x, x)) < 1e-6
    mu, sigma = feature_statistics(x)
    assert mu.shape == (16,) and sigma.shape == (16, 16)
    strata = np.arange(500) % 5
    sub = subsample_frechet([x, x.copy(), x + 1.0], x, strata, strata, resamples=5)
    assert sub.shape == (5, 3)
    assert np.array_equal(sub[:, 0], sub[:, 1])  # paired: every set is subsampled with the same rows
    assert np.all(np.abs(sub[:, 2] - sub[:, 0] - 16.0) < 2.0)  # a mean shift of 1 in 16 dimensions
    # symmetric subset values: the interval is centred on the full-sample estimate
    lo, hi = subsample_interval(1.0, np.array([1.1, 1.2, 1.3]))
    assert lo < 1.0 < hi and (lo + hi) / 2 == pytest.approx(1.0)


def test_stratified_subsets_keep_every_stratum_and_repeat_no_row():
    from thinkpix.evaluation.frechet import _stratified_subset

    strata = np.repeat([0, 1, 2], [10, 20, 40])
    rows = _stratified_subset(strata, 0.5, np.random.default_rng(0))
    assert len(np.unique(rows)) == len(rows) == 35
    assert np.bincount(strata[rows]).tolist() == [5, 10, 20]


def test_subsample_interval_covers_the_true_distance():
    """Coverage of the Gaussian closed-form distance over repeated experiments (fixed seeds): the
    interval's job, which a with-replacement basic bootstrap failed on the class track's features."""
    rng = np.random.default_rng(0)
    mu, sd = np.array([0.5, 0.0, 0.0, 0.0]), np.array([1.3, 1.0, 1.0, 0.8])
    true = _closed_form(np.zeros(4), np.eye(4), mu, np.diag(sd**2))
    hits, trials, n = 0, 40, 1000
    strata = np.arange(n) % 4
    for trial in range(trials):
        x, y = rng.normal(size=(n, 4)), mu + sd * rng.normal(size=(n, 4))
        values = subsample_frechet([y], x, strata, strata, resamples=60, seed=trial)[:, 0]
        lo, hi = subsample_interval(frechet_between(y, x), values)
        hits += lo <= true <= hi
    assert hits / trials >= 0.8


# ----- the feature network ------------------------------------------------------------------------------
def test_feature_net_trains_via_the_cli_and_loads(tmp_path):
    from thinkpix.models.features import extract_features, geometry_targets, load_feature_net

    out = tmp_path / "features"
    # an option between the config and its overrides: the overrides after it still count
    assert main(["train", str(ROOT / "configs" / "features_demo.yaml"), "model.size=tiny", "--export",
                 str(out / "final"), f"out_dir={out}", "steps=3", "batch_size=8", "ckpt_every=3",
                 "optim.warmup_steps=1"]) == 0
    net, record = load_feature_net(out / "final")
    assert record["size"] == "tiny" and record["training"]["config"]["steps"] == 3
    feats = extract_features(net, heldout_set(10)[1])
    assert feats.shape == (10, 32) and np.isfinite(feats).all()
    image = torch.from_numpy(render([SceneObject("square", "red", 4, 8, 10)]))[None]
    torch.testing.assert_close(geometry_targets(image), torch.tensor([[9 / 32, 13 / 32, 10 / 32]]))
    weights = out / "final" / "features.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(ThinkpixError, match="checksum mismatch"):
        load_feature_net(out / "final")


# ----- the table script, end to end at tiny scale --------------------------------------------------------
def test_class_table_script_runs(tiny_dit, dit_adapters, tmp_path):
    from thinkpix.models.features import build_feature_net, save_feature_net

    torch.manual_seed(0)
    save_feature_net(build_feature_net("tiny"), tmp_path / "features", "tiny", 32)
    from thinkpix.analysis import class_table as script
    rsr, lora = dit_adapters
    common = ["--model", str(tiny_dit), "--per-class", "2", "--steps", "1", "--threads", "1",
              "--work", str(tmp_path / "work")]
    # one process samples an arm ahead of time; the table run then takes it from the work folder
    assert script.main([*common, "--arm", f"rsr={rsr}:2", "--sample-only", "--features", "unused"]) == {}
    kept = tmp_path / "work" / "rsr.safetensors"
    before = kept.stat().st_mtime_ns
    table = [*common, "--features", str(tmp_path / "features"), "--arm", "base", "--arm", f"rsr={rsr}:2",
             "--arm", f"lora={lora}", "--bootstrap", "20", "--fd-subsets", "4", "--out", str(tmp_path / "table.json")]
    report = script.main(table)
    assert kept.stat().st_mtime_ns == before  # reused, not re-sampled
    assert list(report["arms"]) == ["base", "rsr", "lora"] and report["images_per_arm"] == 48
    assert "accuracy_minus_base" in report["arms"]["rsr"] and "fd_minus_base" in report["arms"]["lora"]
    assert json.loads((tmp_path / "table.json").read_text())["features_sha256"] == report["features_sha256"]
    # other settings (here the think steps) are a different arm: sampled again, and the result differs
    from safetensors.torch import load_file

    script.main([*table[: table.index(f"rsr={rsr}:2")], f"rsr={rsr}:0", *table[table.index(f"rsr={rsr}:2") + 1 :]])
    assert kept.stat().st_mtime_ns != before
    rsr_t0, base = load_file(kept)["images"], load_file(tmp_path / "work" / "base.safetensors")["images"]
    assert torch.equal(rsr_t0, base)  # T=0 draws exactly the base images


def test_inspect_adapter_measures_expert_updates_and_the_gate(tiny_dit, tmp_path):
    from thinkpix.integrations import attach_rsr, save_rsr
    from thinkpix.rsr import RSRConfig

    from thinkpix.analysis import inspect_adapter as script
    model = ClassToImage.load(tiny_dit)
    rsr = attach_rsr(model.transformer, RSRConfig(layers=[0], num_experts=2, latent_steps=2, rank=2))
    fresh = script.inspect(save_rsr(model.transformer, tmp_path / "fresh"))["layers"]["0"]
    assert fresh["expert_update_norms"] == [0.0, 0.0] and fresh["gate_out_norm"] == 0.0  # zero init
    experts = rsr.experts["0"]
    with torch.no_grad():
        experts.B[0].fill_(1.0)  # only expert 0 moves
    moved = script.inspect(save_rsr(model.transformer, tmp_path / "moved"))["layers"]["0"]
    a, b = experts.A[0].detach().double(), experts.B[0].detach().double()  # (d_in, P*r), (P, r, d_out)
    expected = torch.cat([(a[:, p * 2 : (p + 1) * 2] @ b[p]).flatten() for p in range(3)]).norm()
    assert moved["expert_update_norms"][0] == pytest.approx(float(expected)) and moved["expert_update_norms"][1] == 0.0
