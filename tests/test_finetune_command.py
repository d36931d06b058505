"""One `finetune` command: one base flag (--pretrained: a bundled name or any folder), one flag style
(diffusers' snake_case names; the earlier spellings hidden, deprecated aliases), every flag read before any
model loads."""

from __future__ import annotations

import re
import warnings

import pytest

from thinkpix.cli import build_parser
from thinkpix.commands.finetune import config_overrides, is_config_run, resume_kwargs
from thinkpix.commands.finetune_flags import build
from thinkpix.errors import ThinkpixError

RSR = ["--rsr", "layers=0,1,experts=2,latent_steps=2,rank=2"]


def parse(*argv):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the current spellings never warn
        return build_parser().parse_args(["finetune", *argv])


def finetune_parser():
    return build_parser()._subparsers._group_actions[0].choices["finetune"]


def test_help_is_in_one_style():
    shown = finetune_parser().format_help()
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*", shown))
    assert flags and not [f for f in flags if "-" in f[2:]], sorted(f for f in flags if "-" in f[2:])
    for name in ("--output_dir", "--resume_from_checkpoint", "--num_train_epochs", "--rank", "--max_train_steps",
                 "--learning_rate", "--pretrained"):
        assert name in flags, name
    for old in ("--out", "--base", "--lora-rank", "--resume-from", "--no-resume"):
        assert old not in flags, old


@pytest.mark.parametrize("old, new, dest, value", [
    (["--out", "R"], ["--output_dir", "R"], "output_dir", "R"),
    (["--lora-rank", "4"], ["--rank", "4"], "rank", 4),
    (["--resume-from", "C"], ["--resume_from_checkpoint", "C"], "resume_from_checkpoint", "C"),
    (["--no-resume"], ["--no_resume"], "no_resume", True),
])
def test_old_spellings_are_deprecated_aliases(old, new, dest, value):
    with pytest.warns(DeprecationWarning, match=f"{old[0]} is deprecated; use {new[0]}"):
        was = build_parser().parse_args(["finetune", "--pretrained", "m", *old])
    now = parse("--pretrained", "m", *new)
    assert getattr(was, dest) == getattr(now, dest) == value


def lake_finetune_parser():
    lake = build_parser()._subparsers._group_actions[0].choices["lake"]
    return lake._subparsers._group_actions[0].choices["finetune"]


def test_lake_finetune_has_the_same_flag_style():
    shown = lake_finetune_parser().format_help()
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*", shown))
    assert {"--pretrained", "--output_dir", "--no_resume", "--rsr"} <= flags
    assert not flags & {"--base", "--out", "--no-resume"}
    new = build_parser().parse_args(["lake", "finetune", "--pretrained", "M", "--output_dir", "R", "--no_resume",
                                     *RSR])
    with pytest.warns(DeprecationWarning) as caught:
        old = build_parser().parse_args(["lake", "finetune", "--base", "M", "--out", "R", "--no-resume", *RSR])
    assert sorted(str(w.message) for w in caught) == ["--base is deprecated; use --pretrained",
                                                      "--no-resume is deprecated; use --no_resume",
                                                      "--out is deprecated; use --output_dir"]
    assert (old.pretrained, old.output_dir, old.no_resume) == (new.pretrained, new.output_dir, new.no_resume) \
        == ("M", "R", True)


@pytest.mark.parametrize("argv, missing", [(["--output_dir", "R"], "--pretrained"), (["--pretrained", "M"],
                                                                                      "--output_dir")])
def test_lake_finetune_names_a_missing_base_or_folder(argv, missing, tmp_path, monkeypatch, capsys):
    from thinkpix.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["lake", "finetune", *argv, *RSR]) == 2
    err = capsys.readouterr().err
    assert f"{missing} is required" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "R").exists()


def test_base_is_a_deprecated_pretrained_with_the_trainer_config():
    with pytest.warns(DeprecationWarning, match="--base is deprecated; use --pretrained"):
        old = build_parser().parse_args(["finetune", "--base", "m", *RSR])
    assert old.pretrained == "m" and is_config_run(old)
    assert not is_config_run(parse("--pretrained", "m", *RSR))  # flags: a flags run
    assert is_config_run(parse("--pretrained", "m", *RSR, "steps=3"))  # overrides: the trainer config
    assert is_config_run(parse(*RSR))  # no base named: the default config's
    assert is_config_run(parse("--pretrained", "m", "--method", "full"))


def test_a_config_run_takes_the_flags_that_name_config_keys():
    args = parse("--pretrained", "m", *RSR, "--max_train_steps", "7", "--learning_rate", "0.01", "--rank", "3",
                 "--output_dir", "R", "batch_size=2")
    got = config_overrides(args)
    for override in ("steps=7", "optim.lr=0.01", "finetune.base=m", "finetune.lora_rank=3", "out_dir=R"):
        assert override in got, override
    with pytest.raises(ThinkpixError, match="--data, --resolution: not a setting of a trainer-config run"):
        config_overrides(parse("--pretrained", "m", "--data", "x", "--resolution", "64", "steps=2"))


def test_resume_from_checkpoint_latest_or_a_folder():
    assert resume_kwargs(parse("--pretrained", "m")) == dict(resume=True, resume_from=None, overwrite=False)
    latest = resume_kwargs(parse("--pretrained", "m", "--resume_from_checkpoint", "latest"))
    assert latest == dict(resume=True, resume_from=None, overwrite=False)
    folder = resume_kwargs(parse("--pretrained", "m", "--resume_from_checkpoint", "R/checkpoints/step_0000002"))
    assert folder["resume_from"] == "R/checkpoints/step_0000002"
    with pytest.raises(ThinkpixError, match="contradict"):
        resume_kwargs(parse("--pretrained", "m", "--resume_from_checkpoint", "latest", "--no_resume"))


def test_num_train_epochs_counts_passes_over_the_data(tmp_path):
    from tiny_pipelines import imagefolder

    data = imagefolder(tmp_path / "images", n=20)
    common = ["--pretrained", "m", *RSR, "--data", str(data), "--train_batch_size", "4"]
    cfg, _ = build(parse(*common, "--num_train_epochs", "3", "--gradient_accumulation_steps", "2"))
    assert cfg.steps == 8  # ceil(3 * 20 / (4 * 2))
    cfg, _ = build(parse(*common, "--num_train_epochs", "3", "--max_train_steps", "5"))
    assert cfg.steps == 5  # --max_train_steps wins, as in diffusers' scripts
    with pytest.raises(ThinkpixError, match="shapes stream has no epochs"):
        build(parse("--pretrained", "m", *RSR, "--num_train_epochs", "2"))


def test_a_flags_yaml_reads_old_keys_with_a_warning(tmp_path):
    cfg_file = tmp_path / "ft.yaml"
    cfg_file.write_text("pretrained: m\nrsr: layers=0,latent_steps=1\nout: R\nlora_rank: 3\nmethod: lora\n")
    args = build_parser().parse_args(["finetune", "--config", str(cfg_file)])
    with pytest.warns(DeprecationWarning) as caught:
        cfg, _ = build(args)
    said = [str(w.message) for w in caught]
    assert any("key 'out' is deprecated; use 'output_dir'" in m for m in said), said
    assert any("key 'lora_rank' is deprecated; use 'rank'" in m for m in said), said
    assert (cfg.out_dir, cfg.finetune.lora_rank, cfg.finetune.method) == ("R", 3, "lora")
