"""Issue 12's switches for making routing learn and recursion be used, its instruments and its held-out
validation loss: each checked on tiny real models (diffusers transformers, the tiny text-to-image bundle)."""

import json
import math

import pytest
import torch
from rsr_backbones import VARIANTS, randomize, run

from thinkpix import RSRConfig, attach_rsr, detach_rsr
from thinkpix.cli import main
from thinkpix.errors import ThinkpixError
from thinkpix.integrations import set_latent_steps
from thinkpix.models.t2i import TextToImage
from thinkpix.rsr import LoRAExperts

torch.set_num_threads(1)

LEVERS = dict(gate_init_std=0.5, expert_init="orthogonal", rank=2, temperature=5.0, temperature_end=1.0)


# ----- switches in RSRConfig --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(VARIANTS))
def test_zero_B_identity_is_exact_with_a_random_gate_and_orthogonal_experts(name):
    bb = VARIANTS[name]
    model, x = bb.make(**bb.no_dropout), bb.inputs()
    ref = run(model, x)
    rsr = attach_rsr(model, RSRConfig(layers=bb.layers, latent_steps=3, **LEVERS))
    assert all(g.out.weight.abs().sum() > 0 for g in rsr.gates.values())  # the gates start non-uniform
    for training in (False, True):
        model.train(training)
        for T in (1, 2, 3):
            set_latent_steps(model, T)
            with torch.no_grad():
                out = model(**x)[0]
            assert (out - ref).abs().max() <= 1e-6, (name, training, T)
    detach_rsr(model)


def test_a_random_gate_routes_unevenly_from_the_start():
    bb = VARIANTS["sd3"]
    model, x = bb.make(), bb.inputs()
    rsr = attach_rsr(model, RSRConfig(layers=bb.layers, latent_steps=2, temperature=1.0, gate_init_std=2.0))
    run(model, x)
    entropies = [float(o.entropy.mean()) for o in rsr.collect()]
    assert max(entropies) < 0.9 * math.log(2)  # uniform would be ln 2


def test_defaults_are_unchanged_and_the_gate_init_leaves_the_experts_alone():
    dims = {"0": __import__("thinkpix.rsr", fromlist=["LayerDims"]).LayerDims(32, 32, 16)}
    from thinkpix.rsr import RSRModule

    plain = RSRModule(RSRConfig(layers=[0]), dims, {"name": "toy"})
    std = RSRModule(RSRConfig(layers=[0], gate_init_std=0.1), dims, {"name": "toy"})
    assert plain.gates["0"].out.weight.abs().sum() == 0 and plain.gates["0"].out.bias.abs().sum() == 0
    assert torch.equal(plain.experts["0"].A, std.experts["0"].A)  # experts are drawn first, unchanged
    assert torch.equal(plain.gates["0"].token_in.weight, std.gates["0"].token_in.weight)
    assert 0.05 < float(std.gates["0"].out.weight.detach().std()) < 0.2 and std.gates["0"].out.bias.abs().sum() == 0
    assert plain.current_temperature() == 5.0


def test_orthogonal_expert_init_gives_each_expert_its_own_subspace():
    g = torch.Generator().manual_seed(0)
    e = LoRAExperts(3, 64, 16, rank=4, generator=g, orthogonal=True)  # 3 experts x 12 columns <= 64
    cols = e.A.permute(1, 0, 2).reshape(64, -1)  # (d_in, M*P*r)
    gram = cols.T @ cols
    torch.testing.assert_close(gram, torch.eye(36) * gram.diagonal().mean(), atol=1e-5, rtol=0)
    assert abs(float(gram.diagonal().mean().detach()) - 1.0) < 1e-5  # column norm std * sqrt(d_in) = 1, like random init
    with pytest.raises(ThinkpixError, match="orthogonal expert init"):
        LoRAExperts(3, 16, 16, rank=4, orthogonal=True)
    with pytest.raises(ThinkpixError, match="expert_init"):
        RSRConfig(layers=[0], expert_init="svd")


def test_temperature_annealing_schedule_values():
    c = RSRConfig(layers=[0], temperature=5.0, temperature_end=1.0)
    assert c.temperature_at(0.0) == 5.0 and c.temperature_at(1.0) == pytest.approx(1.0)
    assert c.temperature_at(0.5) == pytest.approx(math.sqrt(5.0))  # geometric: 5 * (1/5) ** 0.5
    assert c.temperature_at(0.25) == pytest.approx(5.0 * 0.2 ** 0.25)
    assert c.temperature_at(2.0) == pytest.approx(1.0) and c.inference_temperature == pytest.approx(1.0)
    fixed = RSRConfig(layers=[0])
    assert fixed.temperature_at(0.0) == fixed.temperature_at(0.7) == fixed.inference_temperature == 5.0
    assert RSRConfig.parse("layers=0,tau=5,temperature_end=1").temperature_end == 1.0
    with pytest.raises(ThinkpixError, match="temperature_end"):
        RSRConfig(layers=[0], temperature_end=0.0)


def test_the_runtime_temperature_is_what_routing_uses():
    bb = VARIANTS["sd3"]
    model, x = bb.make(), bb.inputs()
    rsr = attach_rsr(model, RSRConfig(layers=bb.layers, latent_steps=1, gate_init_std=1.0))
    entropy = {}
    for tau in (5.0, 0.5):
        rsr.set_temperature(tau)
        run(model, x)
        entropy[tau] = float(torch.stack([o.entropy.mean() for o in rsr.collect()]).mean())
    assert entropy[0.5] < entropy[5.0] - 0.05  # sharper softmax at lower tau
    rsr.set_temperature(None)
    assert rsr.current_temperature() == 5.0
    with pytest.raises(ThinkpixError):
        rsr.set_temperature(0.0)


# ----- fine-tuning: optimiser groups, annealing, M = 1, validation, instruments --------------------
@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from pathlib import Path

    out = tmp_path_factory.mktemp("base")
    root = Path(__file__).resolve().parents[1]
    assert main(["train", str(root / "configs" / "tiny_pixel.yaml"), f"out_dir={out}", "steps=2", "ckpt_every=2"]) == 0
    return out / "final"


def _records(run_dir):
    return [json.loads(line) for line in open(run_dir / "metrics.jsonl")]


def test_learning_rate_groups_as_configured(tiny_base, tmp_path):
    from thinkpix.training.config import load_config
    from thinkpix.training.loop import Trainer, learning_rate
    from thinkpix.training.objectives import build_objective

    cfg = load_config(None, [f"finetune.base={tiny_base}", "finetune.method=rsr", "finetune.rsr=layers=0,1,rank=2",
                             "finetune.gate_lr_mult=10", "finetune.expert_lr_mult=0.5", "steps=2", "batch_size=2",
                             "optim.warmup_steps=1", f"out_dir={tmp_path}"])
    objective = build_objective(cfg)
    trainer = Trainer(cfg, objective)
    gates, experts = trainer.optimizer.param_groups
    names = {id(p): n for n, p in trainer.params.items()}
    assert {names[id(p)] for p in gates["params"]} == {n for n in trainer.params if ".rsr.gates." in n}
    assert {names[id(p)] for p in experts["params"]} == {n for n in trainer.params if ".rsr.experts." in n}
    _, metrics = trainer.train_step()
    lr = learning_rate(cfg, 0)
    assert gates["lr"] == pytest.approx(10 * lr) and experts["lr"] == pytest.approx(0.5 * lr)
    assert metrics["grad_norm_experts"] > 0 and "grad_norm_gates" in metrics


def test_finetune_logs_annealing_validation_and_instruments(tiny_base, tmp_path):
    argv = ["finetune", "--pretrained", str(tiny_base), "--rsr", "layers=0,1,latent_steps=2,rank=2,gate_init_std=0.5,tau=5,"
            "temperature_end=1", "steps=4", "batch_size=2", "log_every=1", "validate_every=2", "validation_samples=6",
            "data_pool=5", "--output_dir", str(tmp_path / "rsr")]
    assert main(argv) == 0
    records = _records(tmp_path / "rsr")
    assert [r["step"] for r in records if "val_loss" in r] == [0, 2, 4]
    temps = [r["temperature"] for r in records if "temperature" in r]
    assert temps[0] == pytest.approx(5.0) and temps[-1] == pytest.approx(1.0) and temps == sorted(temps, reverse=True)
    first, last = records[0], records[-1]
    assert first["adapter_effect"] == 0.0 and first["recursion_use"] == 0.0  # B = 0: the base exactly
    assert first["probe_update_cosine"] is None and first["probe_b_norm"] == 0.0
    assert last["probe_b_norm"] > 0 and last["adapter_effect"] > 0 and "grad_norm_gates" in last
    assert len(last["probe_entropy_by_step"]) == 2 and len(last["probe_entropy_by_bin"]) == 4
    assert {"loss", "routing_entropy"} <= set(last)
    # one command summarises the run, with the verdict against the declared thresholds
    from thinkpix.analysis import inspect_adapter as script
    summary = script.main(["--run", str(tmp_path / "rsr")])[str(tmp_path / "rsr")]
    assert [r["step"] for r in summary["rows"]] == [0, 2, 4] and summary["rows"][-1]["grad_norm_gates"] is not None
    assert set(summary["verdict"]) == {"routing", "recursion"}
    # and measures a saved adapter on its base: the T curve of the validation loss, T = 0 the base exactly
    from thinkpix.training.heldout import validation_loss, validation_set_for

    probe = script.main(["--probe", str(tmp_path / "rsr" / "adapter"), "--base", str(tiny_base), "--max-steps", "2"])
    curve = probe[str(tmp_path / "rsr" / "adapter")]["val_loss_by_T"]
    base = TextToImage.load(tiny_base)
    assert len(curve) == 3 and curve[0] == validation_loss(base, validation_set_for(base, 64)) and curve[2] != curve[0]


@pytest.mark.parametrize("record, routing, recursion", [
    (dict(probe_entropy_ratio=0.99, probe_update_cosine=0.2, probe_usage_by_step=[[0.5, 0.5]], recursion_use=0.02),
     "uniform", "used"),
    (dict(probe_entropy_ratio=0.3, probe_update_cosine=0.97, probe_usage_by_step=[[0.5, 0.5]], recursion_use=0.0),
     "uniform", "unused"),
    (dict(probe_entropy_ratio=0.3, probe_update_cosine=0.5, probe_usage_by_step=[[0.95, 0.05], [0.97, 0.03]],
          recursion_use=0.0), "collapsed", "unused"),
    (dict(probe_entropy_ratio=0.3, probe_update_cosine=0.5, probe_usage_by_step=[[0.6, 0.4], [0.3, 0.7]],
          recursion_use=0.01), "left uniform", "used"),
    (dict(probe_entropy_ratio=0.7, probe_update_cosine=0.5, probe_usage_by_step=[[0.6, 0.4]], recursion_use=0.009),
     "partly", "unused"),
    (dict(probe_entropy_ratio=0.0, probe_update_cosine=None, probe_usage_by_step=[[1.0]], recursion_use=0.5),
     "no routing (M=1)", "used"),
])
def test_verdict_follows_the_declared_thresholds(record, routing, recursion):
    from thinkpix.analysis.inspect_adapter import verdict

    assert verdict(record) == {"routing": routing, "recursion": recursion}


def test_one_expert_fine_tunes_as_pure_recursion(tiny_base, tmp_path):
    argv = ["finetune", "--pretrained", str(tiny_base), "--rsr", "layers=0,1,experts=1,latent_steps=2,rank=2", "steps=2",
            "batch_size=2", "log_every=1", "validate_every=2", "validation_samples=4",
            "--output_dir", str(tmp_path / "m1")]
    assert main(argv) == 0
    last = _records(tmp_path / "m1")[-1]
    assert last["expert_usage"] == [1.0] and last["routing_entropy"] == 0.0
    assert last["grad_norm_gates"] == 0.0 and last["grad_norm_experts"] > 0  # one expert: the gate has nothing to learn
    assert last["probe_update_cosine"] is None and last["recursion_use"] > 0


# ----- validation loss --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_t2i():
    torch.manual_seed(0)
    return TextToImage.create("tiny", "pixel", "words", 32)


def test_validation_loss_is_deterministic_across_runs_and_batch_sizes(tiny_t2i):
    from thinkpix.training.heldout import text_validation_set, validation_loss

    a, b = text_validation_set(7, 32), text_validation_set(7, 32)
    assert a.conditions == b.conditions and torch.equal(a.images, b.images) and torch.equal(a.timesteps, b.timesteps)
    losses = [validation_loss(tiny_t2i, a, batch_size=bs) for bs in (1, 3, 7, 64)]
    assert validation_loss(tiny_t2i, b, batch_size=3) == losses[1]  # another run: bit-identical
    assert max(losses) - min(losses) <= 1e-6 * max(losses)  # batch sizes: float rounding only
    tiny_t2i.train()
    validation_loss(tiny_t2i, a)
    assert tiny_t2i.transformer.training  # mode restored
    with torch.no_grad():
        tiny_t2i.transformer.proj_out.weight.mul_(1.1)
    assert validation_loss(tiny_t2i, a) != losses[0]  # it measures the model
    with torch.no_grad():
        tiny_t2i.transformer.proj_out.weight.div_(1.1)


def test_validation_set_is_held_out_from_the_evaluation_prompts():
    from thinkpix.training.heldout import eval_prompts, stratified_timesteps, text_validation_set

    held = eval_prompts()
    assert len(held) > 100  # the committed data/eval set was found
    vset = text_validation_set(64, 32)
    assert not set(vset.conditions) & held
    t = stratified_timesteps(64)
    from statistics import NormalDist

    quantiles = [1 / (1 + math.exp(-NormalDist().inv_cdf((k + 0.5) / 64))) for k in range(64)]
    assert sorted(t.tolist()) == pytest.approx(quantiles, abs=1e-6)  # logit-normal(0, 1), as training draws
    assert t.min() > 0 and t.max() < 1


def test_data_pool_draws_from_a_fixed_set_however_the_batch_is_split():
    from thinkpix.training.data import world_batch

    prompts, images, seeds = world_batch(0, 3, range(8), 32, 0.0, pool=3)
    assert len({im.numpy().tobytes() for im in images}) <= 3 and len(set(seeds)) == 8  # noise differs per draw
    halves = [world_batch(0, 3, r, 32, 0.0, pool=3) for r in (range(0, 4), range(4, 8))]
    assert torch.equal(torch.cat([h[1] for h in halves]), images)
    pool = {im.numpy().tobytes() for s in range(20) for im in world_batch(0, s, range(8), 32, 0.0, pool=3)[1]}
    assert len(pool) == 3


# ----- instruments --------------------------------------------------------------------------------------
def test_probe_measures_recursion_and_expert_differences(tiny_t2i):
    from thinkpix.training.instruments import probe_rsr
    from thinkpix.training.heldout import text_validation_set

    vset = text_validation_set(4, 32)
    tiny_t2i.train()
    rsr = attach_rsr(tiny_t2i.transformer, RSRConfig(layers=[0, 1], latent_steps=3, rank=2))
    zero = probe_rsr(tiny_t2i, vset, samples=2, bins=2)
    assert zero.output_adapter_effect == 0.0 and all(lp.recursion_use == 0.0 for lp in zero.layers)
    assert all(lp.update_cosine == [None] for lp in zero.layers)
    randomize(rsr)
    rep = probe_rsr(tiny_t2i, vset, samples=2, bins=2)
    assert rsr.latent_steps == 3 and tiny_t2i.transformer.training  # depth and mode restored
    lp = rep.layers[0]
    assert len(lp.entropy) == 2 and len(lp.entropy[0]) == 3 and len(lp.usage[0][0]) == 2
    assert all(0 < x <= math.log(2) + 1e-6 for row in lp.entropy for x in row)
    assert lp.recursion_use > 0 and lp.adapter_effect > 0 and rep.output_recursion_use > 0
    assert lp.b_norms == pytest.approx([float(b.detach().norm()) for b in rsr.experts["0"].B])
    # the cosine is the one between the two experts' q/k/v on the same tokens
    assert -1 <= lp.update_cosine[0] <= 1
    with torch.no_grad():
        rsr.experts["0"].A[1] = rsr.experts["0"].A[0]
        rsr.experts["0"].B[1] = rsr.experts["0"].B[0]
    same = probe_rsr(tiny_t2i, vset, samples=2, bins=2)
    assert same.layers[0].update_cosine[0] == pytest.approx(1.0)
    one = RSRConfig(layers=[0, 1], latent_steps=1, rank=2)
    detach_rsr(tiny_t2i.transformer)
    attach_rsr(tiny_t2i.transformer, one)
    assert probe_rsr(tiny_t2i, vset, samples=2, bins=2).layers[0].recursion_use == 0.0  # T = 1: nothing skipped
    detach_rsr(tiny_t2i.transformer)
    summary = rep.summary()
    assert summary["recursion_use"] > 0 and len(summary["probe_entropy_by_step"]) == 3
    json.dumps(summary)  # loggable as is


def test_class_track_validation_and_probe():
    from thinkpix.models.c2i import ClassToImage
    from thinkpix.training.instruments import probe_rsr
    from thinkpix.training.heldout import validation_loss, validation_set_for

    torch.manual_seed(0)
    model = ClassToImage.create("tiny", "pixel", 32)
    with torch.no_grad():  # a fresh DiT's adaLN-Zero gates hide the attention entirely: move off the init
        for p in model.transformer.parameters():
            p.add_(torch.randn(p.shape) * 0.05)
    vset = validation_set_for(model, 5)
    assert all(isinstance(c, int) for c in vset.conditions) and vset.conditions == validation_set_for(model, 5).conditions
    losses = [validation_loss(model, vset, batch_size=bs) for bs in (1, 5)]
    assert abs(losses[0] - losses[1]) <= 1e-6 * losses[1]
    rsr = attach_rsr(model.transformer, RSRConfig(layers=[0], latent_steps=2, rank=2))
    randomize(rsr)
    report = probe_rsr(model, vset, samples=2, bins=2)
    assert report.layers[0].recursion_use > 0 and len(report.layers[0].entropy[0]) == 2


def test_full_finetune_trains_only_the_transformer_and_exports_a_loadable_model(tiny_base, tmp_path):
    """`--method full` (the base trained further, issue 12's compute-matched baseline): every transformer
    weight moves, the text encoder and autoencoder do not, and the exported model folder loads and differs."""
    argv = ["finetune", "--method", "full", "--pretrained", str(tiny_base), "steps=3", "batch_size=2", "log_every=1",
            "validate_every=3", "validation_samples=4", "data_pool=5", "optim.warmup_steps=1",
            "--output_dir", str(tmp_path / "full")]
    assert main(argv) == 0
    base, further = TextToImage.load(tiny_base), TextToImage.load(tmp_path / "full" / "model")
    moved = {n: not torch.equal(p, dict(further.transformer.named_parameters())[n])
             for n, p in base.transformer.named_parameters()}
    assert sum(moved.values()) > 0.9 * len(moved)  # (a few, e.g. the zero-initialised output, may still equal)
    for part in ("text_encoder", "autoencoder"):
        a, b = getattr(base, part), getattr(further, part)
        if a is not None:
            assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    records = _records(tmp_path / "full")
    assert [r["step"] for r in records if "val_loss" in r] == [0, 3]
    # a DiT base is refused with the documented one-line error (exit 2), before any training
    assert main(["finetune", "--method", "full", "--pretrained", "shapes-dit", "steps=1",
                 "--output_dir", str(tmp_path / "dit")]) == 2
    assert not (tmp_path / "dit" / "metrics.jsonl").exists()


def test_recursion_trained_in_from_scratch_exports_samples_and_sweeps_T(tmp_path):
    """Issue 12 item 5: `thinkpix train ... model.rsr=...` attaches RSR from the start with the base
    trainable (random depth), exports it inside the model folder, and every loader re-attaches it; the
    sampler's --latent_steps then chooses T (0 = the network without its loops)."""
    from pathlib import Path

    from thinkpix.integrations.attach import get_rsr, set_latent_steps
    from thinkpix.models.sampler import generate_latents
    from thinkpix.training.config import load_config
    from thinkpix.training.objectives import build_objective

    root = Path(__file__).resolve().parents[1]
    config, spec = str(root / "configs" / "tiny_pixel.yaml"), "model.rsr=layers=0,1,experts=2,latent_steps=3,rank=2,random_depth=true"
    objective = build_objective(load_config(config, [spec, f"out_dir={tmp_path}"]))
    trainable = set(objective.trainable_parameters())
    assert any(".rsr.experts." in n for n in trainable) and any(".rsr.gates." in n for n in trainable)
    assert any(n.endswith("transformer_blocks.0.attn.to_q.weight") for n in trainable)  # the base trains too

    out = tmp_path / "run"
    assert main(["train", config, spec, "steps=3", "batch_size=4", "ckpt_every=3", f"out_dir={out}"]) == 0
    final = out / "final"
    assert (final / "rsr" / "rsr_config.json").is_file()
    model = TextToImage.load(final)
    rsr = get_rsr(model.transformer)
    assert rsr.config.random_depth and rsr.config.latent_steps == 3
    latents = {}
    for T in (0, 1, 3):
        set_latent_steps(model.transformer, T)
        latents[T] = generate_latents(model, ["a red circle", "two blue squares"], seed=0, steps=2)
    assert not torch.equal(latents[0], latents[3]) and not torch.equal(latents[1], latents[3])
    # the CLI loads it with its loops and takes --latent_steps; an --adapter on top is refused
    assert main(["generate", "a red circle", "--model", str(final), "--latent_steps", "2", "-n", "1", "--steps", "2",
                 "--out", str(tmp_path / "g.png")]) == 0
    assert main(["generate", "a red circle", "--model", str(final), "--adapter", str(final / "rsr"), "-n", "1",
                 "--out", str(tmp_path / "h.png")]) == 2
    # bad configs: malformed spec, and recursion trained in together with an adapter fine-tune
    with pytest.raises(ThinkpixError):
        load_config(config, ["model.rsr=layers=x"])
    with pytest.raises(ThinkpixError, match="exclude each other"):
        load_config(config, [spec, "finetune.method=lora", "finetune.base=shapes-base", "finetune.rsr=layers=0"])
