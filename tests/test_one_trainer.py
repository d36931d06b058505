"""One trainer for every objective: what diffusers' scripts offer (accumulation, fp16 scaling, schedulers,
a tracker, validation at the end) are `TrainerOptions` of the same `Trainer`, checked before any model loads."""

from __future__ import annotations

import pytest
import torch

from thinkpix.cli import main
from thinkpix.errors import ThinkpixError
from thinkpix.training.loop import Trainer
from thinkpix.training.objectives import build_objective
from thinkpix.training.options import TrainerOptions


class Recorder:
    """A tracker that keeps what it is given (tensorboard's SummaryWriter calls)."""

    def __init__(self):
        self.scalars, self.images, self.closed = [], [], False

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, step))

    def add_images(self, tag, images, step):
        self.images.append((tag, step, tuple(images.shape)))

    def close(self):
        self.closed = True


def test_accumulation_averages_the_micro_batches_of_a_bundled_objective(tiny_cfg):
    cfg = tiny_cfg(steps=1, optim__grad_clip=1e9)
    acc = Trainer(cfg, build_objective(cfg), options=TrainerOptions(gradient_accumulation_steps=2))
    loss, _ = acc.train_step()
    by_hand = Trainer(cfg, build_objective(cfg))  # the same seed: the same initial weights
    by_hand.optimizer.zero_grad(set_to_none=True)
    losses = []
    for micro in (0, 1):  # the micro-steps' ids: step * 2 + k
        micro_loss, _ = by_hand.module(micro, by_hand.local_indices())
        (micro_loss / 2).backward()
        losses.append(micro_loss.item())
    assert loss == pytest.approx(sum(losses) / 2, rel=1e-6)
    for name, p in acc.params.items():
        assert torch.equal(p.grad, by_hand.params[name].grad), name
    assert losses[0] != losses[1]  # two different batches, not one counted twice


def test_end_of_training_previews_reach_the_tracker(tiny_cfg, monkeypatch):
    cfg = tiny_cfg(steps=6, sample_every=4)
    recorder = Recorder()

    def open_recorder(self):
        self.writer = recorder

    monkeypatch.setattr(Trainer, "open_tracker", open_recorder)
    trainer = Trainer(cfg, build_objective(cfg), options=TrainerOptions(validate_at_end=True))
    trainer.fit()
    assert sorted(p.name for p in (trainer.out / "samples").glob("*.png")) == ["step_0000004.png", "step_0000006.png"]
    assert [(tag, step) for tag, step, _ in recorder.images] == [("samples", 4), ("samples", 6)]
    assert recorder.images[0][2][1] == 3  # (n, 3, H, W)
    assert ("train/loss", 6) in recorder.scalars and recorder.closed


def test_without_end_validation_only_the_grid_previews(tiny_cfg):
    cfg = tiny_cfg(steps=6, sample_every=4)
    trainer = Trainer(cfg, build_objective(cfg))
    trainer.fit()
    assert [p.name for p in (trainer.out / "samples").glob("*.png")] == ["step_0000004.png"]


@pytest.mark.parametrize("options, flag", [
    (TrainerOptions(lr_scheduler="bogus"), "--lr_scheduler"),
    (TrainerOptions(mixed_precision="fp8"), "--mixed_precision"),
    (TrainerOptions(report_to="wandb"), "--report_to"),
    (TrainerOptions(gradient_accumulation_steps=0), "--gradient_accumulation_steps"),
])
def test_bad_options_are_refused_with_their_flag(options, flag):
    with pytest.raises(ThinkpixError, match=flag):
        options.check()


def test_a_diffusers_scheduler_drives_a_bundled_objective(tiny_cfg):
    cfg = tiny_cfg(steps=4)
    trainer = Trainer(cfg, build_objective(cfg), options=TrainerOptions(lr_scheduler="linear", lr_warmup_steps=2))
    lrs = [trainer.train_step()[1]["lr"] for _ in range(4)]
    peak = cfg.optim.lr
    assert lrs == pytest.approx([0.0, peak / 2, peak, peak / 2])  # diffusers' linear: warm-up, then down to 0


@pytest.mark.parametrize("flags, flag", [
    (["--lr_scheduler", "bogus"], "--lr_scheduler"),
    (["--report_to", "tensorboard"], "--report_to tensorboard"),
    (["--mixed_precision", "fp8"], "--mixed_precision"),
])
def test_finetune_flags_are_checked_before_the_base_loads(flags, flag, tmp_path, monkeypatch, capsys):
    import importlib.util

    import thinkpix.models.pipeline_base as pipeline_base

    if flag.startswith("--report_to") and importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed")

    def no_load(*args, **kwargs):
        raise AssertionError("the base was loaded before the flags were checked")

    monkeypatch.setattr(pipeline_base, "load_base", no_load)
    argv = ["finetune", "--pretrained", str(tmp_path / "pipe"), "--rsr", "layers=0,latent_steps=2",
            "--output_dir", str(tmp_path / "run"), *flags]
    assert main(argv) == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_every_fine_tune_is_the_one_objective_with_a_part_per_base(tmp_path):
    """A bundled text-to-image base, a bundled DiT (trainer-config runs) and a flags run build the same
    `FinetuneObjective`; only its part differs. The part's names reach the trainer unchanged, the adapter is
    the only trainable thing, and what the trainer asks of the part (the model, its autocast) is the part's."""
    from thinkpix.models.pipeline_base import load_base
    from thinkpix.training.config import load_config
    from thinkpix.training.objectives import FinetuneObjective, FrozenClassFlow, FrozenFlow
    from thinkpix.training.pipeline_objective import PipelineOptions, PipelinePart, pipeline_finetune

    spec = ["finetune.method=rsr", "finetune.rsr=layers=0,1,experts=2,latent_steps=2,rank=2", "steps=2",
            "batch_size=2", f"out_dir={tmp_path / 'run'}"]
    built = {}
    for base, part in (("shapes-base", FrozenFlow), ("shapes-dit", FrozenClassFlow)):
        objective = build_objective(load_config(None, [f"finetune.base={base}", *spec]))
        assert type(objective) is FinetuneObjective and type(objective.part) is part, base
        assert objective.model is objective.part.model and not hasattr(objective, "autocast_dtype")
        built[base] = objective
    cfg = load_config(None, ["finetune.base=shapes-base", *spec])
    flags = pipeline_finetune(cfg, PipelineOptions(pretrained="shapes-base", mixed_precision="bf16"),
                              load_base("shapes-base", "cpu", "fp32"))
    assert type(flags) is FinetuneObjective and type(flags.part) is PipelinePart
    assert flags.autocast_dtype == torch.bfloat16 == flags.part.autocast_dtype
    flags.autocast_dtype = None  # the trainer sets it on the objective (--precision); the part autocasts
    assert flags.part.autocast_dtype is None
    for objective in (*built.values(), flags):
        params = objective.trainable_parameters()
        assert params == objective.part.trainable_parameters() and params
        assert all(".rsr." in name for name in params)  # the adapter alone trains
        assert {p for p in objective.parameters() if p.requires_grad} == set(params.values())
        assert [g["name"] for g in objective.parameter_groups()] == ["gates", "experts"]
    flags.train()  # the part decides: the transformer trains, the encoders stay in eval
    inside = set(flags.part.base.transformer.modules())
    assert flags.part.base.transformer.training and flags.training
    assert not [m for m in flags.part.modules() if m not in inside and m.training]
