"""The lake world's config section (`lake.*`): every key declared with a Spec (type, range, unit, meaning),
checked the same way from YAML and from dotted overrides, and listed with its type and range by --help."""

import dataclasses

import pytest

from thinkpix.errors import ThinkpixError
from thinkpix.schema import config_keys
from thinkpix.worlds.lake.maps import MAX_SIZE
from thinkpix.worlds.lake.config import LakeSection, LakeTrainConfig, lake_config


def lake_keys():
    return [(dotted, spec, default) for dotted, spec, default in config_keys(LakeTrainConfig)
            if dotted.startswith("lake.")]


def test_every_lake_key_is_declared_with_a_meaning_and_its_default_in_range():
    declared = {f.name: f for f in dataclasses.fields(LakeSection)}
    assert {dotted.split(".")[1] for dotted, _, _ in lake_keys()} == set(declared)
    for dotted, spec, default in lake_keys():
        assert "spec" in declared[dotted.split(".")[1]].metadata, dotted
        assert spec.help and spec.help != dotted.split(".")[1], dotted
        assert spec.check(default, dotted) == default


@pytest.mark.parametrize("override, words", [
    ("lake.sizes=1-3", r"'lake.sizes' must be in \[2, 8\], got 1"),
    (f"lake.sizes=4-{MAX_SIZE + 1}", f"'lake.sizes' must be at most {MAX_SIZE}, got {MAX_SIZE + 1}: 8 cells fill"),
    ("lake.sizes=8-4", "'lake.sizes' range '8-4' in '8-4' is reversed"),
    ("lake.sizes=4-", "'lake.sizes' expected integers"),
    ("lake.sizes=", "'lake.sizes' must not be empty"),
    ("lake.lengths=0-2", r"'lake.lengths' must be in \[1, 63\], got 0"),
    ("lake.lengths=1-1000000000", "at most 63, got 1000000000: a shortest path visits"),  # refused before listing
    ("lake.depth=-1", r"'lake.depth' must be in \[0, 64\]"),
    ("lake.depth=true", "'lake.depth' must be an integer"),
    ("lake.depth=1.5", "'lake.depth' must be an integer"),
    ("lake.path_weight=0.5", r"'lake.path_weight' must be in \[1, inf\]"),
    ("lake.path_weight=nan", "'lake.path_weight' must be a finite number"),
    ("lake.path_weight=inf", "'lake.path_weight' must be a finite number"),
    ("lake.patch_context=4", r"'lake.patch_context' must be in \[0, 3\]"),
    ("lake.target=route", "'lake.target' must be one of path, position"),
    ("lake.random_path=1", "'lake.random_path' must be true or false"),
    ("lake.colour=1", "unknown config key 'lake.colour'"),
])
def test_lake_overrides_are_checked_by_their_specs(tmp_path, override, words):
    with pytest.raises(ThinkpixError, match=words):
        lake_config(None, [f"out_dir={tmp_path / 'run'}", override])


@pytest.mark.parametrize("content, words", [
    ("lake:\n  depth: true\n", "'lake.depth' must be an integer"),  # no bool-as-int
    ("lake:\n  random_path: 1\n", "'lake.random_path' must be true or false"),  # no int-as-bool
    ("lake:\n  sizes: 4\n", "'lake.sizes' must be text"),  # a YAML number is not a range text
    ("lake:\n  path_weight: .nan\n", "'lake.path_weight' must be a finite number"),
    ("lake:\n  depth: 2\n  depth: 3\n", "'depth' given twice"),
    ("lake: 3\n", "'lake' is a section"),
])
def test_lake_yaml_is_checked_by_the_same_specs(tmp_path, content, words):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(ThinkpixError, match=words):
        lake_config(path, [f"out_dir={tmp_path / 'run'}"])


def test_good_lake_values_pass_and_cross_key_rules_stay(tmp_path):
    cfg = lake_config(None, [f"out_dir={tmp_path / 'run'}", "lake.sizes=4-5,7", "lake.lengths=2-6", "lake.depth=3",
                             "lake.path_weight=4.5", "lake.patch_context=1", "lake.random_path=true"])
    assert (cfg.lake.sizes, cfg.lake.depth, cfg.lake.path_weight, cfg.lake.random_path) == ("4-5,7", 3, 4.5, True)
    with pytest.raises(ThinkpixError, match="position target needs paths of 2 or more moves"):
        lake_config(None, [f"out_dir={tmp_path / 'run'}", "lake.target=position", "lake.lengths=1"])


@pytest.mark.parametrize("argv", [["lake", "train"], ["lake", "finetune"]])
def test_lake_help_lists_every_lake_key_with_its_type_range_and_default(capsys, argv):
    from thinkpix.cli import main

    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for dotted, spec, default in lake_keys():
        assert f"{dotted} = {default!r} ({' '.join(spec.describe().split())})" in out, (argv, dotted)
    assert "lake.sizes = '4,5' (integers and ranges like 4,5 or 4-6, each in [2, 8] cells a side; max because" in out


def test_an_rsr_spec_in_lake_rsr_is_named_by_its_key(tmp_path):
    with pytest.raises(ThinkpixError, match="config key 'lake.rsr': --rsr latent_steps must be at most 64"):
        lake_config(None, [f"out_dir={tmp_path / 'run'}", "lake.rsr=layers=0,latent_steps=65"])
