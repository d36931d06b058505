"""The typed schema (`thinkpix.schema`): every config key and command-line option declared once, with type,
range, unit and meaning; the same declaration checks YAML, dotted overrides and argparse, and writes --help."""

import argparse
import dataclasses
import math

import pytest

from thinkpix import declarations as d
from thinkpix.cli import build_parser, main
from thinkpix.deprecation import DeprecatedFlag
from thinkpix.errors import ThinkpixError
from thinkpix.rsr.config import BOUNDS
from thinkpix.schema import Spec, Word, config_keys
from thinkpix.training.config import TrainConfig, config_from_dict, load_config


def all_parsers(parser=None, path=()):
    parser = parser or build_parser()
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_parsers(sub, (*path, name))


def test_every_option_of_every_command_is_declared_and_its_help_shows_type_and_range():
    undeclared = []
    for path, parser in all_parsers():
        for action in parser._actions:
            plain = isinstance(action, (argparse._HelpAction, argparse._SubParsersAction, DeprecatedFlag))
            if plain:
                continue
            spec = getattr(action, "spec", None)
            if spec is None:
                undeclared.append((" ".join(path), action.dest))
            else:
                assert spec.describe() in action.help, (path, action.dest)
    assert not undeclared


def test_every_commands_help_renders():
    for path, parser in all_parsers():
        text = parser.format_help()  # argparse formats each help with %: a stray % would raise here
        assert parser.prog in text, path


def test_every_config_key_is_declared_with_a_meaning():
    for dotted, spec, default in config_keys(TrainConfig):
        field_names = dotted.split(".")
        cls = TrainConfig
        for part in field_names[:-1]:
            cls = type(getattr(cls(), part))
        field = {f.name: f for f in dataclasses.fields(cls)}[field_names[-1]]
        assert "spec" in field.metadata, dotted
        assert spec.help and spec.help != field_names[-1], dotted
        assert spec.check(default, dotted) == default  # every default lies in its own range


@pytest.mark.parametrize("content, words", [
    ("steps: true\n", "'steps' must be an integer"),  # no bool-as-int
    ("steps: 3\nsteps: 4\n", "'steps' given twice"),  # duplicate keys
    ("", "no config keys"),  # empty
    ("# only a comment\n\n", "no config keys"),  # comment-only
    ("stepz: 3\n", "unknown config key 'stepz'"),  # unknown keys
    ("optim:\n  lr: .nan\n", "'optim.lr' must be a finite number"),  # NaN
    ("ema_decay: .inf\n", "'ema_decay' must be a finite number"),  # infinity
    ("batch_size: 2.5\n", "'batch_size' must be an integer"),
    ("grad_checkpointing: 1\n", "'grad_checkpointing' must be true or false"),  # no int-as-bool
    ("out_dir: 7\n", "'out_dir' must be text"),
    ("out_dir:\nsteps: 2\n", "'out_dir': no value given"),
])
def test_yaml_strictness(tmp_path, content, words):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ThinkpixError, match=words):
        load_config(path, [f"out_dir={tmp_path / 'run'}"] if "out_dir" not in content else [])


@pytest.mark.parametrize("override, words", [
    ("steps=true", "'steps' must be an integer"),
    ("steps=nan", "'steps' must be an integer"),
    ("optim.lr=nan", "'optim.lr' must be a finite number"),
    ("optim.lr=inf", "'optim.lr' must be a finite number"),
    ("optim.lr=0", r"'optim.lr' must be in \(0, 10\]"),
    ("grad_checkpointing=1", "must be true or false"),
    ("model.canvas=48", "must be one of 32, 64"),
    ("finetune.lora_rank=5000", f"at most {BOUNDS['rank'][0]}, got 5000: above the widest"),
    ("bogus=1", "unknown config key 'bogus'"),
])
def test_override_strictness(tmp_path, override, words):
    with pytest.raises(ThinkpixError, match=words):
        config_from_dict({"out_dir": str(tmp_path / "run")}, [override])


def test_overrides_are_parsed_by_the_keys_type_not_by_yaml(tmp_path):
    cfg = config_from_dict({"out_dir": str(tmp_path / "run")},
                           ["finetune.lora_layers=2", "optim.lr=5e-4", "steps=1e3", "grad_checkpointing=true",
                            "data_mix=position=2,free=1"])
    assert cfg.finetune.lora_layers == "2"  # a text key keeps its text (YAML would make it the number 2)
    assert cfg.optim.lr == 5e-4 and cfg.steps == 1000 and cfg.grad_checkpointing is True
    assert cfg.data_mix == "position=2,free=1"


def test_a_yaml_number_in_scientific_notation_is_a_number(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"out_dir: {tmp_path / 'run'}\noptim:\n  lr: 1e-4\nsteps: 2e3\n")  # YAML 1.1: both are text
    cfg = load_config(path)
    assert cfg.optim.lr == 1e-4 and cfg.steps == 2000


def test_spec_checks_and_parses_each_type():
    steps = Spec(int, "steps", 1, 64, why_max="each one costs a forward pass")
    assert steps.parse("12", "--x") == 12 and steps.check(12.0, "k") == 12
    for bad in ("1.5", "abc", "true", ""):
        with pytest.raises(ThinkpixError, match="--x must be an integer"):
            steps.parse(bad, "--x")
    for bad in (True, 1.5, "12", None, math.nan):
        with pytest.raises(ThinkpixError, match="k must be an integer"):
            steps.check(bad, "k")
    with pytest.raises(ThinkpixError, match="at most 64, got 65: each one costs a forward pass"):
        steps.parse("65", "--x")
    with pytest.raises(ThinkpixError, match=r"must be in \[1, 64\], got 0"):
        steps.parse("0", "--x")
    scale = Spec(float, "scale", 0.0, 1.0, hi_open=True)
    assert scale.parse("0.5", None) == 0.5
    for bad in ("nan", "inf", "-inf"):
        with pytest.raises(ThinkpixError, match="must be a finite number"):
            scale.parse(bad, None)
    with pytest.raises(ThinkpixError, match=r"\[0, 1\)"):
        scale.check(1.0, "s")
    switch = Spec(bool, "on")
    assert switch.parse("True", None) is True and switch.parse("false", None) is False
    for bad in (1, 0, "yes"):
        with pytest.raises(ThinkpixError, match="true or false"):
            switch.check(bad, "s")
    name = Spec(str, "name", empty=False, pattern=r"cpu|cuda(:\d+)?", pattern_help="cpu or cuda[:N]")
    assert name.parse("cuda:1", None) == "cuda:1"
    with pytest.raises(ThinkpixError, match="must be cpu or cuda"):
        name.parse("gpu", None)
    with pytest.raises(ThinkpixError, match="must not be empty"):
        name.parse("  ", "--device")
    assert isinstance(Word("3"), str)
    import numpy as np

    assert steps.check(np.int64(3), "k") == 3 and type(steps.check(np.int64(3), "k")) is int  # computed counts
    with pytest.raises(ThinkpixError, match="must be an integer"):
        steps.check(np.bool_(True), "k")


def test_a_word_of_the_wrong_type_is_an_argparse_error(capsys):
    for argv, words in ((["generate", "x", "--seed", "abc"], "argument --seed: must be an integer, got 'abc'"),
                        (["generate", "x", "--guidance", "abc"], "argument --guidance: must be a number"),
                        (["finetune", "--pretrained", "shapes-base", "--seed", "true"], "argument --seed: must be an int")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["generate", "x", "--latent_steps", "65"], f"at most 64, got 65: {BOUNDS['latent_steps'][1][:30]}"),
    (["generate", "x", "--resolution", "5000"], "at most 4096, got 5000: larger images"),
    (["finetune", "--pretrained", "shapes-base", "--rsr", "layers=0", "--resolution", "5000"], "at most 4096"),
    (["finetune", "--pretrained", "shapes-base", "--rsr", "layers=0", "--rank", "5000"], "at most 4096, got 5000"),
    (["generate", "x", "--guidance", "nan"], "finite"),
    (["generate", "x", "--sampler", "rk4"], "--sampler must be one of euler, heun, got 'rk4'"),
    (["finetune", "--pretrained", "shapes-base", "--rsr", "layers=0", "--mixed_precision", "fp8"], "one of no, bf16"),
    (["generate", "x", "-n", "5000"], "at most 4096, got 5000: every image"),
])
def test_machine_bounds_on_the_command_line_carry_their_reason(capsys, argv, words):
    assert main(argv) == 2  # ranges are checked after parsing: one line naming the command, exit status 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"thinkpix {argv[0]}: error: ")
    assert words in err, err


@pytest.mark.parametrize("spec, maximum", [("layers=0,latent_steps=65", "latent_steps must be at most 64"),
                                          ("layers=0,experts=257", "num_experts must be at most 256"),
                                          ("layers=0,rank=4097", "rank must be at most 4096")])
def test_rsr_bounds_are_the_same_in_training_configs(tmp_path, spec, maximum):
    with pytest.raises(ThinkpixError, match=maximum):
        config_from_dict({"out_dir": str(tmp_path / "r")}, [f"model.rsr={spec}"])


def test_a_flags_yaml_is_checked_by_the_flags_declarations(tmp_path, capsys):
    """The same Spec refuses --learning_rate nan on the command line and learning_rate: .nan in a flags YAML."""
    path = tmp_path / "flags.yaml"
    for content, words in (("pretrained: shapes-base\nrsr: layers=0\nlearning_rate: .nan\n", "must be a finite number"),
                           ("pretrained: shapes-base\nrsr: layers=0\nmax_train_steps: true\n", "must be an integer"),
                           ("pretrained: shapes-base\nrsr: layers=0\nrank: 9999\n", "at most 4096")):
        path.write_text(content)
        assert main(["finetune", "--config", str(path), "--output_dir", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert words in err and str(path) in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_help_prints_type_range_and_unit(capsys):
    for argv, shown in ((["generate", "--help"], ["-n", "int in [1, 4096] images", "int in [0, 64] latent steps",
                                                   "one of euler, heun", "number in [0, 100]"]),
                        (["train", "--help"], ["optim.lr = 0.001 (number in (0, 10])", "steps = 1000 (int in [1, ",
                                               "model.canvas = 32 (one of 32, 64 pixels)"]),
                        (["finetune", "--help"], ["--learning_rate", "number in (0, 10]", "--rank", "trainer-config keys",
                                                   "finetune.lora_rank = 0 (int in [0, 4096]"])):
        with pytest.raises(SystemExit):
            main(argv)
        out = " ".join(capsys.readouterr().out.split())
        for words in shown:
            assert words in out, (argv, words)


def test_the_option_tables_left_validation():
    import thinkpix.validation as v

    for table in ("OPTION_CHECKS", "OUTPUTS", "INPUTS", "NO_CLOBBER", "PRETRAINED_ONLY", "CONFIG_NUMBERS",
                  "CONFIG_INTEGERS", "check_args", "config_ranges"):
        assert not hasattr(v, table), table
    assert d.FLAG_SPECS["learning_rate"].lo == 0.0  # the checks live in the declarations
