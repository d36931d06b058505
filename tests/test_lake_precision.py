"""The lake ladder's `--precision` (cell diffusion and the supervised task): bf16 autocasts the training
forward, weights and optimiser state stay fp32, a run resumes only in its own precision, a seeded run is
bit-reproducible within one precision, and fp32 records are as they were before the option."""

import json

import pytest
import torch

from thinkpix.errors import ThinkpixError
from thinkpix.training.checkpoint import latest_checkpoint, load_checkpoint
from thinkpix.worlds.lake import cell_diffusion as cd
from thinkpix.worlds.lake import ladder
from thinkpix.worlds.lake import ladder_task as task
from thinkpix.worlds.lake.ladder import Budget
from thinkpix.worlds.lake.ladder_models import arm_named

torch.set_num_threads(1)
TINY = task.Split("tiny", (4,), (2,), 2)
QUIET = dict(log=lambda *_: None, splits=(TINY,))


def _budget(steps=2):
    return Budget(steps=steps, batch=4, checkpoint_every=1, warmup=1)


def _weights(folder):
    tensors, opt_state, state = load_checkpoint(latest_checkpoint(folder / "checkpoints"))
    return tensors, opt_state, state


def test_bf16_diffusion_run_autocasts_the_forward_and_keeps_fp32_weights_and_state(tmp_path, monkeypatch):
    seen = []
    velocity = cd.CellDiffusion.velocity

    def spy(self, *args, **kwargs):
        out = velocity(self, *args, **kwargs)
        if torch.is_grad_enabled():
            seen.append(out.dtype)  # training forwards only (scoring runs under no_grad)
        return out

    monkeypatch.setattr(cd.CellDiffusion, "velocity", spy)
    folder = cd.train(arm_named("rsr-every-step"), 0, tmp_path, _budget(), precision="bf16", **QUIET)
    assert seen and set(seen) == {torch.bfloat16}
    tensors, opt_state, state = _weights(folder)
    assert all(t.dtype == torch.float32 for t in tensors.values())
    assert all(v.dtype == torch.float32 for s in opt_state["state"].values() for k, v in s.items() if k != "step")
    assert state["precision"] == "bf16"
    assert json.loads((folder / "train.json").read_text())["precision"] == "bf16"
    scores = json.loads((folder / "scores.json").read_text())
    assert len(scores["tiny"]["T"]["1"]) == 2


def test_fp32_records_carry_no_precision_key_and_auto_is_recorded_as_resolved(tmp_path, monkeypatch):
    fp32 = cd.train(arm_named("stack-1"), 0, tmp_path / "fp32", _budget(1), **QUIET)
    assert "precision" not in json.loads((fp32 / "train.json").read_text())
    assert "precision" not in _weights(fp32)[2]
    from thinkpix import precision

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    auto = cd.train(arm_named("stack-1"), 0, tmp_path / "auto", _budget(1), precision="auto", **QUIET)
    assert json.loads((auto / "train.json").read_text())["precision"] == "bf16"


@pytest.mark.parametrize("setting", ["fp32", "bf16"])
def test_a_seeded_diffusion_run_is_bit_reproducible_within_one_precision(tmp_path, setting):
    runs = [cd.train(arm_named("stack-1"), 3, tmp_path / name, _budget(), precision=setting, **QUIET)
            for name in ("a", "b")]
    a, b = (_weights(f)[0] for f in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_and_fp32_runs_differ(tmp_path):
    runs = [cd.train(arm_named("stack-1"), 3, tmp_path / p, _budget(), precision=p, **QUIET) for p in ("fp32", "bf16")]
    a, b = (_weights(f)[0] for f in runs)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # autocast acted on the computation


def test_a_run_resumes_only_in_its_own_precision(tmp_path):
    arm = arm_named("stack-1")
    folder = ladder.run_dir(tmp_path, "diffusion-stack-1", 0)
    model = cd.CellDiffusion(arm, 0)
    step = lambda grids, depth, rng: cd.loss(model, grids, depth, rng)  # noqa: E731
    assert ladder.fit(model, folder, 0, _budget(2), step, log=lambda *_: None, stop_at=1, precision="bf16") is None
    with pytest.raises(ThinkpixError, match="trained in bf16; it resumes only in that precision, not fp32"):
        ladder.fit(model, folder, 0, _budget(2), step, log=lambda *_: None)
    assert ladder.fit(model, folder, 0, _budget(2), step, log=lambda *_: None, precision="bf16")["precision"] == "bf16"


def test_resume_in_bf16_gives_the_uninterrupted_weights(tmp_path):
    arm = arm_named("stack-1")

    def run(folder, stop_at=None):
        torch.manual_seed(0)
        model = cd.CellDiffusion(arm, 0)
        ladder.fit(model, folder, 0, _budget(3), lambda g, d, r: cd.loss(model, g, d, r), log=lambda *_: None,
                   stop_at=stop_at, precision="bf16")
        return model

    whole = run(tmp_path / "whole")
    run(tmp_path / "split", stop_at=1)
    resumed = run(tmp_path / "split")
    assert all(torch.equal(p, q) for p, q in zip(whole.state_dict().values(), resumed.state_dict().values()))


def test_supervised_ladder_takes_the_precision_too(tmp_path):
    folder = ladder.train(arm_named("stack-1"), 0, tmp_path, _budget(1), precision="bf16", eval_steps=(1,), **QUIET)
    assert json.loads((folder / "train.json").read_text())["precision"] == "bf16"


def test_ladder_cli_refuses_an_unknown_precision(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        ladder.main(["train", "--task", "diffusion", "--arm", "stack-1", "--runs", str(tmp_path), "--precision", "fp16"])
    assert exc.value.code == 2
    assert "--precision" in capsys.readouterr().err
