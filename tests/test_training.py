import json
import os
import subprocess
import sys

import pytest
import torch

from thinkpix.errors import ThinkpixError
from thinkpix.training.config import config_from_dict, load_config
from thinkpix.training.loop import Trainer
from thinkpix.training.objectives import build_objective


def _weights(trainer):
    return {k: p.detach().clone() for k, p in trainer.params.items()}


def test_loss_falls_when_overfitting_one_batch(tiny_cfg):
    cfg = tiny_cfg(steps=60, batch_size=8, optim__lr=3e-3, optim__warmup_steps=1, cond_dropout=0.0)
    trainer = Trainer(cfg, build_objective(cfg))
    first = None
    for _ in range(cfg.steps):
        trainer.optimizer.zero_grad()
        loss, _ = trainer.module(0, range(8))  # always step 0's batch
        loss.backward()
        trainer.optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first


def test_resume_is_bit_identical_to_uninterrupted(tiny_cfg, tmp_path):
    torch.manual_seed(0)
    a_cfg = tiny_cfg(out_dir=str(tmp_path / "a"))
    a = Trainer(a_cfg, build_objective(a_cfg))
    init = {k: v.clone() for k, v in a.objective.state_dict().items()}
    a.fit()

    b_cfg = tiny_cfg(out_dir=str(tmp_path / "b"))
    b = Trainer(b_cfg, build_objective(b_cfg))
    b.objective.load_state_dict(init)
    b.ema = type(b.ema)(b.params, b_cfg.ema_decay)  # EMA starts from the same weights too
    b.fit(stop_after=3)  # "crash" after the step-3 checkpoint
    c = Trainer(b_cfg, build_objective(b_cfg))  # a fresh process: new random init, then resume
    c.fit()
    assert c.step == a.step == 6
    for k, w in _weights(a).items():
        assert torch.equal(w, c.params[k]), k
    for k, w in a.ema.shadow.items():
        assert torch.equal(w, c.ema.shadow[k]), k


def test_checkpoint_files_are_safetensors_and_json(tiny_cfg):
    cfg = tiny_cfg()
    Trainer(cfg, build_objective(cfg)).fit()
    ckpt = os.path.join(cfg.out_dir, "checkpoints")
    latest = open(os.path.join(ckpt, "latest")).read().strip()
    assert sorted(os.listdir(os.path.join(ckpt, latest))) == ["checksums.json", "model.safetensors", "optimizer.safetensors",
                                                          "rng.safetensors",
                                                          "state.json"]
    assert not [f for f in os.listdir(ckpt) if f.startswith(".tmp")]
    lines = [json.loads(x) for x in open(os.path.join(cfg.out_dir, "metrics.jsonl"))]
    assert lines[-1]["step"] == 6 and "images_per_s" in lines[-1]


@pytest.mark.parametrize(
    "override, message",
    [
        (["optim.lr=-1"], "'optim.lr' must be in (0, 10], got -1.0"),
        (["model.space=voxel"], "'model.space'"),
        (["nonsense=3"], "unknown config key 'nonsense'"),
        (["steps=abc"], "'steps' must be an integer, got 'abc'"),
        (["model.size=huge"], "unknown size 'huge'"),
        (["model.space=latent"], "'model.autoencoder' is required"),
        (["steps"], "must look like key.sub=value"),
    ],
)
def test_config_errors_are_clear(override, message):
    with pytest.raises(ThinkpixError, match=message.replace("(", r"\(")):
        load_config(None, override)


def test_config_file_errors(tmp_path):
    with pytest.raises(ThinkpixError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ThinkpixError, match="not valid YAML"):
        load_config(bad)


def test_overrides_are_typed():
    cfg = config_from_dict({}, ["optim.lr=5e-4", "steps=30", "grad_checkpointing=true"])
    assert cfg.optim.lr == 5e-4 and cfg.steps == 30 and cfg.grad_checkpointing is True


@pytest.mark.slow
def test_two_process_torchrun_matches_one_process(tiny_cfg, tmp_path):
    cfg = tiny_cfg(out_dir=str(tmp_path / "single"), steps=4, ckpt_every=4, batch_size=4)
    torch.manual_seed(123)
    single = Trainer(cfg, build_objective(cfg))
    init = {k: v.clone() for k, v in single.objective.state_dict().items()}
    single.fit()
    # the 2-process run starts from the same initial weights, written as a resumable step-0 checkpoint
    from thinkpix.training.checkpoint import save_checkpoint

    ddp_dir = tmp_path / "ddp"
    twin_cfg = tiny_cfg(out_dir=str(ddp_dir), steps=4, ckpt_every=4, batch_size=4)
    twin = Trainer(twin_cfg, build_objective(twin_cfg))
    twin.objective.load_state_dict(init)
    twin.ema = type(twin.ema)(twin.params, twin_cfg.ema_decay)
    save_checkpoint(ddp_dir / "checkpoints", 0, twin.state_tensors(), None, {})
    config = tmp_path / "ddp.yaml"
    import yaml

    from thinkpix.training.config import to_dict

    config.write_text(yaml.safe_dump(to_dict(twin_cfg)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "thinkpix.cli", "train", str(config)]
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=600)
    from thinkpix.training.checkpoint import latest_checkpoint, load_checkpoint

    tensors, _, state = load_checkpoint(latest_checkpoint(ddp_dir / "checkpoints"))
    assert state["step"] == 4
    for k, p in single.params.items():
        torch.testing.assert_close(tensors[f"param.{k}"], p.detach(), rtol=1e-4, atol=1e-5)


def test_ema_follows_the_weights_as_configured(tiny_cfg):
    """After every step the shadow moves towards the weights by 1 - d, d = min(ema_decay, (1 + step) / (10 + step)):
    the warm-up branch at step 1 (2/11 < 0.2), the configured decay from step 2 on (3/12 > 0.2)."""
    cfg = tiny_cfg(steps=4, ema_decay=0.2)
    trainer = Trainer(cfg, build_objective(cfg))
    want = {k: p.detach().clone().float() for k, p in trainer.params.items()}
    for step in range(1, 5):
        trainer.train_step()
        d = min(0.2, (1 + step) / (10 + step))
        for k, p in trainer.params.items():
            want[k] = d * want[k] + (1 - d) * p.detach().float()
    moved = 0
    for k, shadow in trainer.ema.shadow.items():
        torch.testing.assert_close(shadow, want[k], atol=1e-6, rtol=1e-5)
        moved += int(not torch.equal(shadow, trainer.params[k].detach()))
    assert moved > 0  # the shadow lags the weights: it is not a copy of them
