"""The `precision` option (fp32 | bf16 | auto): what `auto` resolves to, that every setting trains and
samples a tiny model, that bf16 is autocast only (weights, optimiser state, EMA, routers stay fp32),
and that a seeded run is bit-reproducible within one precision."""

import json
from pathlib import Path

import pytest
import torch

from thinkpix import precision
from thinkpix.cli import main
from thinkpix.errors import ThinkpixError
from thinkpix.training.loop import Trainer
from thinkpix.training.objectives import build_objective

ROOT = Path(__file__).resolve().parents[1]
RSR_IN = "layers=0,1,experts=2,latent_steps=2,rank=2"


@pytest.fixture
def cpu_flags(monkeypatch):
    """Set the CPU flags the detector sees: cpu_flags(("avx512_bf16",)) or cpu_flags(())."""
    def set_flags(flags):
        monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: tuple(flags))
    return set_flags


def test_fixed_settings_resolve_to_themselves_and_bad_ones_are_refused():
    assert precision.resolve("fp32") == "fp32" and precision.resolve("bf16") == "bf16"
    with pytest.raises(ThinkpixError, match="fp32, bf16, auto"):
        precision.resolve("fp16")


@pytest.mark.parametrize("flags, expected", [(("avx512_bf16",), "bf16"), (("amx_bf16",), "bf16"), ((), "fp32")])
def test_auto_follows_the_cpu_bf16_flags(cpu_flags, flags, expected):
    cpu_flags(flags)
    assert precision.resolve("auto", "cpu") == expected
    ctx = precision.autocast("auto", "cpu")
    with ctx:
        assert torch.is_autocast_enabled("cpu") == (expected == "bf16")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n\nflags\t: fpu\n")
    monkeypatch.setattr(precision, "CPUINFO", info)
    precision.cpu_bf16_flags.cache_clear()
    try:
        assert precision.cpu_bf16_flags() == ("avx512_bf16",)
        info.write_text("flags\t\t: fpu sse avx2 avx512f\n")
        precision.cpu_bf16_flags.cache_clear()
        assert precision.cpu_bf16_flags() == ()
        monkeypatch.setattr(precision, "CPUINFO", tmp_path / "missing")
        precision.cpu_bf16_flags.cache_clear()
        assert precision.cpu_bf16_flags() == ()
    finally:
        monkeypatch.undo()
        precision.cpu_bf16_flags.cache_clear()


def test_config_refuses_an_unknown_precision(tiny_cfg):
    with pytest.raises(ThinkpixError, match="'precision'"):
        tiny_cfg(precision="fp16")


def _train(cfg, steps=None):
    """-> (trainer, dtypes of the transformer's output seen in training steps)."""
    trainer = Trainer(cfg, build_objective(cfg))
    seen = []
    hook = trainer.objective.model.transformer.register_forward_hook(lambda m, i, o: seen.append(o[0].dtype))
    trainer.fit(stop_after=steps)
    hook.remove()
    return trainer, seen


def _all_fp32(trainer) -> None:
    assert all(p.dtype == torch.float32 for p in trainer.params.values())
    assert all(v.dtype == torch.float32 for v in trainer.ema.shadow.values())
    for state in trainer.optimizer.state.values():
        assert all(v.dtype == torch.float32 for k, v in state.items() if k != "step")
    assert trainer.optimizer.state  # the optimiser did step


@pytest.mark.parametrize("setting", ["fp32", "bf16", "auto"])
def test_every_setting_trains_with_fp32_weights_routers_and_state(tiny_cfg, cpu_flags, setting):
    cpu_flags(("avx512_bf16",))  # auto -> bf16 whatever machine runs the test
    cfg = tiny_cfg(precision=setting, steps=3, ckpt_every=3, model__rsr=RSR_IN)  # RSR trained in: gates + experts
    trainer, seen = _train(cfg)
    assert trainer.step == 3
    expected = torch.float32 if setting == "fp32" else torch.bfloat16
    assert seen and set(seen) == {expected}  # the transformer really ran in that precision
    _all_fp32(trainer)
    assert bool(trainer.optimizer.defaults["fused"]) == (setting != "fp32")  # fused AdamW on the fast path only
    assert any(".rsr.gates." in n for n in trainer.params)  # the routers were among the fp32 trainables
    lines = [json.loads(x) for x in (Path(cfg.out_dir) / "metrics.jsonl").read_text().splitlines()]
    assert lines and all(torch.isfinite(torch.tensor(x["loss"])) for x in lines if "loss" in x)


def test_bf16_changes_the_numbers_and_stays_close(tiny_cfg, tmp_path):
    runs = {}
    for setting in ("fp32", "bf16"):
        trainer, _ = _train(tiny_cfg(precision=setting, steps=3, ckpt_every=3, out_dir=str(tmp_path / setting)))
        runs[setting] = {k: p.detach().clone() for k, p in trainer.params.items()}
    diffs = [(runs["fp32"][k] - runs["bf16"][k]).abs().max().item() for k in runs["fp32"]]
    assert max(diffs) > 0  # autocast did act on the computation
    assert max(diffs) < 0.05  # ... and 3 steps at lr 1e-3 stay near the fp32 run


@pytest.mark.parametrize("setting", ["fp32", "bf16"])
def test_a_seeded_run_is_bit_reproducible_within_one_precision(tiny_cfg, tmp_path, setting):
    weights = []
    for name in ("a", "b"):
        trainer, _ = _train(tiny_cfg(precision=setting, steps=3, ckpt_every=3, out_dir=str(tmp_path / name)))
        weights.append({k: p.detach().clone() for k, p in trainer.params.items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_resume_in_bf16_gives_the_uninterrupted_weights(tiny_cfg, tmp_path):
    whole, _ = _train(tiny_cfg(precision="bf16", steps=4, ckpt_every=2, out_dir=str(tmp_path / "whole")))
    cfg = tiny_cfg(precision="bf16", steps=4, ckpt_every=2, out_dir=str(tmp_path / "split"))
    _train(cfg, steps=2)
    resumed, _ = _train(cfg)
    assert all(torch.equal(whole.params[k], resumed.params[k]) for k in whole.params)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    assert main(["train", str(ROOT / "configs" / "tiny_pixel.yaml"), f"out_dir={out}", "steps=2",
                 "ckpt_every=2", "--precision", "bf16"]) == 0
    assert json.loads((out / "config.json").read_text())["precision"] == "bf16"  # the flag reached the config
    return out / "final"


def test_sampling_commands_take_every_precision(tiny_model, tmp_path, cpu_flags, capsys):
    cpu_flags(("avx512_bf16",))
    prompts = str(ROOT / "data" / "eval" / "geneval.jsonl")
    records = {}
    for setting in ("fp32", "bf16", "auto"):
        out = tmp_path / setting
        assert main(["sample", "--prompts", prompts, "--limit", "1", "--images_per_prompt", "2", "--model",
                     str(tiny_model), "--steps", "2", "--out", str(out), "--precision", setting]) == 0
        records[setting] = json.loads((out / "sample_run.json").read_text())
        assert main(["generate", "a red circle", "-n", "1", "--model", str(tiny_model), "--steps", "2",
                     "--out", str(tmp_path / f"{setting}.png"), "--precision", setting]) == 0
    assert "precision" not in records["fp32"]  # folders sampled before the option still resume
    assert records["bf16"]["precision"] == records["auto"]["precision"] == "bf16"  # auto recorded as resolved
    capsys.readouterr()
    assert main(["sample", "--prompts", prompts, "--limit", "1", "--images_per_prompt", "2", "--model",
                 str(tiny_model), "--steps", "2", "--out", str(tmp_path / "fp32"), "--precision", "bf16"]) == 2
    assert "precision: folder None vs now 'bf16'" in capsys.readouterr().err  # fp32 images not continued in bf16


def test_bad_precision_flag_exits_2(tiny_model, tmp_path):
    assert main(["generate", "a red circle", "--model", str(tiny_model), "--out", str(tmp_path / "g.png"),
                 "--precision", "fp16"]) == 2  # a value outside the choices: one line, exit status 2


def test_bf16_training_attention_runs_in_fp32_and_sampling_attention_in_bf16():
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 11, 16, generator=g).bfloat16().requires_grad_(True) for _ in range(3))
    with precision.autocast("bf16", "cpu"):
        trained = F.scaled_dot_product_attention(q, k, v)  # will be differentiated: fp32 inside
        with torch.no_grad():
            sampled = F.scaled_dot_product_attention(q, k, v)  # inference: bf16 attention
    fp32 = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = F.scaled_dot_product_attention(q, k, v)
    assert trained.dtype == sampled.dtype == torch.bfloat16
    assert torch.equal(trained, fp32.bfloat16()) and torch.equal(sampled, bf16)
    trained.float().sum().backward()
    assert q.grad is not None and q.grad.dtype == torch.bfloat16


def test_docs_precision_tables_are_the_committed_benchmark_verbatim():
    from thinkpix.analysis.precision_tables import precision_table, profile_table

    result = json.loads((ROOT / "benchmarks" / "results" / "precision.json").read_text())
    doc = (ROOT / "docs" / "training.md").read_text()
    assert precision_table(result) in doc
    assert result["command"] in doc
    for size in result["sizes"]:
        assert profile_table(result, size) in doc
    for entry in result["sizes"].values():  # speed-ups are of the same process's fp32 rounds
        fp32 = entry["precisions"]["fp32"]
        for e in entry["precisions"].values():
            assert e["train_speedup"] == pytest.approx(e["train_images_per_s"] / fp32["train_images_per_s"])
