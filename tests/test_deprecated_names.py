"""The number of latent steps has one name, `latent_steps` (`--latent_steps` on the command line), and one
way to set it besides the per-call `joint_attention_kwargs` key: `set_latent_steps`, a setter that is also a
context manager. Every earlier spelling still works and warns that it is deprecated."""

from __future__ import annotations

import warnings

import pytest
import torch

from rsr_backbones import make_sd3, sd3_inputs
from thinkpix.cli import build_parser
from thinkpix.deprecation import ThinkpixDeprecationWarning, show_on_command_line
from thinkpix.integrations import attach_rsr, get_rsr, set_latent_steps
from thinkpix.rsr.config import RSRConfig


def _no_warning(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        return fn(*args, **kwargs)


def test_rsr_spec_steps_is_a_deprecated_alias_of_latent_steps():
    with pytest.warns(DeprecationWarning, match=r"--rsr steps= is deprecated; use latent_steps="):
        old = RSRConfig.parse("layers=1,2,experts=2,steps=3")
    new = _no_warning(RSRConfig.parse, "layers=1,2,experts=2,latent_steps=3")
    assert old.latent_steps == new.latent_steps == 3 and old == new


@pytest.mark.parametrize("argv", [
    ["generate", "a red circle"],
    ["sample", "--prompts", "p.jsonl", "--out", "o"],
    ["lake", "generate", "--model", "m", "--map", "3", "--out", "g.png"],
    ["lake", "sample", "--model", "m", "--prompts", "p.jsonl", "--out", "o"],
])
def test_think_steps_flag_is_a_hidden_deprecated_alias(argv):
    parser = build_parser()
    with pytest.warns(DeprecationWarning, match="--think-steps is deprecated; use --latent_steps"):
        old = parser.parse_args([*argv, "--think-steps", "2"])
    new = _no_warning(parser.parse_args, [*argv, "--latent_steps", "2"])
    assert old.latent_steps == new.latent_steps == 2 and not hasattr(old, "think_steps")
    assert _no_warning(parser.parse_args, argv).latent_steps is None  # the alias sets no default of its own
    sub = parser._subparsers._group_actions[0].choices[argv[0]]
    if argv[0] == "lake":
        sub = sub._subparsers._group_actions[0].choices[argv[1]]
    shown = sub.format_help()
    assert "--latent_steps" in shown and "--think-steps" not in shown


def test_deprecations_are_one_line_on_the_command_line():
    before = warnings.formatwarning
    try:
        show_on_command_line()
        line = warnings.formatwarning("--think-steps is deprecated; use --latent_steps", ThinkpixDeprecationWarning,
                                      "x.py", 1)
        other = warnings.formatwarning("something", UserWarning, "x.py", 1)
    finally:
        warnings.formatwarning = before
    assert line == "thinkpix: warning: --think-steps is deprecated; use --latent_steps\n"
    assert "UserWarning" in other  # other warnings keep Python's format


@pytest.fixture()
def sd3_rsr():
    transformer = make_sd3()
    attach_rsr(transformer, RSRConfig(layers=[0, 1], latent_steps=2, rank=2))
    return transformer.eval()


def test_set_latent_steps_is_a_setter_and_a_context_manager(sd3_rsr):
    rsr = get_rsr(sd3_rsr)
    with set_latent_steps(sd3_rsr, 0):
        assert rsr.latent_steps == 0
        with torch.no_grad():
            inside = sd3_rsr(**sd3_inputs())[0]
    assert rsr.latent_steps == 2  # restored on exit
    set_latent_steps(sd3_rsr, 3)  # without `with`: it stays
    assert rsr.latent_steps == 3
    with set_latent_steps(sd3_rsr, None):  # None: unchanged
        assert rsr.latent_steps == 3
    with torch.no_grad():
        per_call = sd3_rsr(**sd3_inputs(), joint_attention_kwargs={"latent_steps": 0})[0]
    assert torch.equal(inside, per_call)  # the two ways agree
    assert rsr.latent_steps == 3  # the per-call key leaves the setting alone


def test_set_latent_steps_restores_after_an_error(sd3_rsr):
    with pytest.raises(RuntimeError):
        with set_latent_steps(sd3_rsr, 5):
            raise RuntimeError("boom")
    assert get_rsr(sd3_rsr).latent_steps == 2


def test_latent_steps_for_is_a_deprecated_alias(sd3_rsr):
    from thinkpix.models.pipeline_kinds import latent_steps_for

    with pytest.warns(DeprecationWarning, match="latent_steps_for is deprecated"):
        with latent_steps_for(sd3_rsr, 4):
            assert get_rsr(sd3_rsr).latent_steps == 4
    assert get_rsr(sd3_rsr).latent_steps == 2
    plain = make_sd3()
    with pytest.warns(DeprecationWarning), latent_steps_for(plain, 4):  # no RSR: nothing to set, as before
        assert not hasattr(plain, "rsr")


def test_think_steps_keyword_is_a_deprecated_alias(sd3_rsr, tmp_path):
    from thinkpix.integrations.methods import load_adapter
    from thinkpix.integrations import save_rsr

    save_rsr(sd3_rsr, tmp_path / "adapter")
    fresh = make_sd3()
    with pytest.warns(DeprecationWarning, match="think_steps= is deprecated; use latent_steps="):
        assert load_adapter(fresh, tmp_path / "adapter", think_steps=1) == "rsr"
    assert get_rsr(fresh).latent_steps == 1
    other = make_sd3()
    assert _no_warning(load_adapter, other, tmp_path / "adapter", latent_steps=3) == "rsr"
    assert get_rsr(other).latent_steps == 3
    with pytest.raises(TypeError, match="thinking_steps"):
        load_adapter(make_sd3(), tmp_path / "adapter", thinking_steps=1)


def test_a_run_recorded_with_steps_resumes_with_latent_steps():
    from thinkpix.training.request import differences

    old = {"fields": {"finetune.rsr": "layers=2,3,experts=2,steps=2,rank=8", "seed": 0}}
    same = {"fields": {"finetune.rsr": "layers=2,3,experts=2,latent_steps=2,rank=8", "seed": 0}}
    other = {"fields": {"finetune.rsr": "layers=2,3,experts=2,latent_steps=3,rank=8", "seed": 0}}
    assert differences(old, same) == []
    assert [d.split(":")[0] for d in differences(old, other)] == ["finetune.rsr"]


def test_a_sample_record_with_think_steps_reads_as_latent_steps(tmp_path):
    from thinkpix.sample_record import open_output, read_record

    record = {"kind": "t2i", "latent_steps": 2, "seed": 0}
    assert open_output(tmp_path, record) is False
    text = (tmp_path / "sample_run.json").read_text().replace('"latent_steps"', '"think_steps"')
    (tmp_path / "sample_run.json").write_text(text)
    assert read_record(tmp_path)["latent_steps"] == 2
    assert open_output(tmp_path, record) is True  # the same run: resumes
