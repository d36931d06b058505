"""The keys of an RSR spec (`RSRConfig`): each field declared once with a Spec (type, range, unit, meaning, the
maxima with their reasons), the same checks whether a config is built in Python, parsed from `--rsr` / `model.rsr`
/ `finetune.rsr` / `lake.rsr` or read from an adapter, and every key listed with its type and range by --help."""

import dataclasses
import math

import numpy as np
import pytest

from thinkpix.cli import main
from thinkpix.errors import ThinkpixError
from thinkpix.rsr.config import ALIASES, BOUNDS, RSRConfig, field_specs


def test_every_field_but_the_free_notes_is_declared_with_a_meaning_and_its_default_in_range():
    specs = field_specs()
    assert set(specs) == {f.name for f in dataclasses.fields(RSRConfig)} - {"extra"}
    defaults = RSRConfig(layers=[0])
    for name, spec in specs.items():
        assert spec.help and spec.help != name, name
        if name != "layers":
            assert spec.check(getattr(defaults, name), name) == getattr(defaults, name)
    # the maxima that protect the machine come from the declarations, each with its reason
    assert {name: hi for name, (hi, _) in BOUNDS.items()} == {"num_experts": 256, "latent_steps": 64, "rank": 4096,
                                                              "gate_hidden": 65_536, "seed": 2**32 - 1}
    assert all(why == specs[name].why_max and why for name, (_, why) in BOUNDS.items())


@pytest.mark.parametrize("bad, words", [
    (dict(latent_steps=True), "latent_steps must be an integer, got True"),  # no bool-as-int
    (dict(num_experts=2.5), "num_experts must be an integer"),
    (dict(rank="8"), "rank must be an integer"),
    (dict(seed=np.bool_(True)), "seed must be an integer"),
    (dict(temperature=math.nan), "temperature must be a finite number"),
    (dict(temperature=math.inf), "temperature must be a finite number"),
    (dict(temperature=True), "temperature must be a number"),
    (dict(alpha=math.nan), "alpha must be a finite number"),
    (dict(temperature_end=0.0), r"temperature_end must be in \(0, inf\]"),
    (dict(init_std=-1.0), "init_std must be in"),
    (dict(reinject=1), "reinject must be true or false"),  # no int-as-bool
    (dict(random_depth=None), "random_depth must be true or false"),
    (dict(gate=1), "gate must be text"),
    (dict(routing="argmax"), "routing must be one of hard, soft"),
    (dict(layers=[True]), "layers must be an integer"),
    (dict(layers=["1"]), "layers must be an integer"),
    (dict(layers=[-1]), r"layers must be in \[0, inf\]"),
    (dict(latent_steps=65), "latent_steps must be at most 64, got 65: every latent step reruns"),
    (dict(rank=4097), "rank must be at most 4096, got 4097: above the widest"),
    (dict(extra=[1]), "extra must be a mapping"),
])
def test_fields_are_checked_strictly_by_their_specs(bad, words):
    with pytest.raises(ThinkpixError, match="invalid RSR config: .*" + words):
        RSRConfig(**{"layers": [0], **bad})


def test_problems_are_listed_together_and_integral_numbers_become_ints():
    with pytest.raises(ThinkpixError) as info:
        RSRConfig(layers=[0], latent_steps=True, temperature=math.nan)
    assert "latent_steps" in str(info.value) and "temperature" in str(info.value)
    c = RSRConfig(layers=[np.int64(2)], num_experts=np.int32(3), rank=4.0)
    assert (c.layers, c.num_experts, c.rank) == ([2], 3, 4)
    assert all(type(v) is int for v in (*c.layers, c.num_experts, c.rank))


@pytest.mark.parametrize("spec, words", [
    ("layers=0,latent_steps=1.5", "--rsr latent_steps must be an integer"),
    ("layers=0,tau=nan", "--rsr temperature must be a finite number"),
    ("layers=0,tau=inf", "--rsr temperature must be a finite number"),
    ("layers=0,experts=1000", "--rsr num_experts must be at most 256, got 1000: the gate"),
    ("layers=0,reinject=maybe", "--rsr reinject must be true or false"),
    ("layers=0,gate=attn", "--rsr gate must be one of mlp, tokens_only, linear"),
    ("layers=0,latent_steps=none", "--rsr latent_steps must be an integer"),  # only optional keys take none
    ("layers=x", "--rsr layers must be an integer"),
])
def test_a_spec_string_is_parsed_by_the_same_specs(spec, words):
    with pytest.raises(ThinkpixError, match=words):
        RSRConfig.parse(spec)


def test_aliases_presets_and_the_deprecated_spelling_still_parse():
    c = RSRConfig.parse("layers=1,2,experts=3,k=2,tau=0.5,temperature_end=none,preset=refined-every-step")
    assert (c.num_experts, c.top_k, c.temperature, c.temperature_end) == (3, 2, 0.5, None)
    assert c.base_every_step is True and c.final_input == "refined"
    with pytest.warns(DeprecationWarning):
        assert RSRConfig.parse("layers=0,steps=3").latent_steps == 3
    assert set(ALIASES.values()) <= set(field_specs())


@pytest.mark.parametrize("argv", [["train"], ["finetune"], ["lake", "train"], ["lake", "finetune"]])
def test_help_lists_every_rsr_key_with_its_type_and_range(capsys, argv):
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name, spec in field_specs().items():
        assert f" {name}" in out, (argv, name)
        if spec.type is not bool:
            assert spec.describe() in out, (argv, name)
    assert "num_experts (or experts) = 2 (int in [1, 256] experts; max because" in out
