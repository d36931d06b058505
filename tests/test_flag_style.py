"""One flag style on the command line: every option any command shows is snake_case (diffusers' names where
diffusers has the flag, e.g. --resume_from_checkpoint); each earlier kebab-case spelling still parses, as a
hidden alias that sets the same value and warns that it is deprecated."""

from __future__ import annotations

import argparse
import re
import warnings

import pytest

from thinkpix.cli import build_parser

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")


def _subparsers(parser, path=()):
    """(command path, parser) of every command and sub-command, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, (*path, name))


def test_every_shown_option_is_snake_case():
    seen = {}
    for path, parser in _subparsers(build_parser()):
        for action in parser._actions:
            if action.help is argparse.SUPPRESS:
                continue  # the deprecated spellings are hidden
            seen.update({flag: path for flag in action.option_strings if flag.startswith("--")})
        shown = FLAG.findall(parser.format_help())  # the description's examples too
        kebab = [flag for flag in shown if "-" in flag[2:]]
        assert not kebab, (" ".join(path), kebab)
    kebab = {flag: path for flag, path in seen.items() if "-" in flag[2:]}
    assert not kebab, kebab
    assert {"--latent_steps", "--resume_from_checkpoint", "--output_dir", "--images_per_prompt"} <= set(seen)


# (argv that parses, the old spelling, the current one, the word given (None: a switch), the parsed value)
PER_TASK = ["world", "prompts", "--out", "p.jsonl"]
RENDER = ["world", "render", "--prompts", "p.jsonl", "--out", "o"]
SAMPLE = ["sample", "--prompts", "p.jsonl", "--out", "o"]
LAKE_SAMPLE = ["lake", "sample", "--model", "m", "--prompts", "p.jsonl", "--out", "o"]
LAKE_GENERATE = ["lake", "generate", "--model", "m", "--map", "3", "--out", "g.png"]
RENAMED = [
    (["generate", "a red circle"], "--latent-steps", "--latent_steps", "2", 2),
    (["generate", "a red circle"], "--think-steps", "--latent_steps", "2", 2),
    (["generate", "a red circle"], "--num-images", "--num_images", "3", 3),
    (["generate", "a red circle"], "--force-base", "--force_base", None, True),
    (SAMPLE, "--images-per-prompt", "--images_per_prompt", "3", 3),
    (SAMPLE, "--batch-size", "--batch_size", "5", 5),
    (SAMPLE, "--latent-steps", "--latent_steps", "2", 2),
    (["demo"], "--per-task", "--per_task", "2", 2),
    (["demo"], "--images-per-prompt", "--images_per_prompt", "2", 2),
    (["demo"], "--ground-truth", "--ground_truth", None, True),
    (PER_TASK, "--per-task", "--per_task", "7", 7),
    (RENDER, "--images-per-prompt", "--images_per_prompt", "2", 2),
    (["train", "c.yaml"], "--resume-from", "--resume_from_checkpoint", "R/checkpoints/step_0000002",
     "R/checkpoints/step_0000002"),
    (["train", "c.yaml"], "--no-resume", "--no_resume", None, True),
    (["train", "c.yaml"], "--stop-after", "--stop_after", "3", 3),
    (["serve"], "--class-model", "--class_model", "M", "M"),
    (["serve"], "--class-adapter", "--class_adapter", "A", "A"),
    (["serve"], "--lake-model", "--lake_model", "M", "M"),
    (["serve"], "--lake-adapter", "--lake_adapter", "A", "A"),
    (["serve"], "--queue-size", "--queue_size", "9", 9),
    (["serve"], "--no-generate-on-load", "--no_generate_on_load", None, True),
    (["lake", "prompts", "--out", "p.jsonl"], "--per-cell", "--per_cell", "2", 2),
    (["lake", "train", "c.yaml"], "--no-resume", "--no_resume", None, True),
    (["lake", "train", "c.yaml"], "--stop-after", "--stop_after", "3", 3),
    (LAKE_SAMPLE, "--images-per-map", "--images_per_map", "2", 2),
    (LAKE_SAMPLE, "--latent-steps", "--latent_steps", "2", 2),
    (LAKE_SAMPLE, "--think-steps", "--latent_steps", "2", 2),
    (LAKE_GENERATE, "--num-images", "--num_images", "2", 2),
    (LAKE_GENERATE, "--latent-steps", "--latent_steps", "2", 2),
]


@pytest.mark.parametrize("argv, old, new, word, value", RENAMED, ids=[f"{r[0][0]}{r[1]}" for r in RENAMED])
def test_old_spelling_is_a_hidden_deprecated_alias(argv, old, new, word, value):
    given = [] if word is None else [word]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the current spelling never warns
        now = build_parser().parse_args([*argv, new, *given])
        default = build_parser().parse_args(argv)
    with pytest.warns(DeprecationWarning, match=f"^{old} is deprecated; use {new}$"):
        was = build_parser().parse_args([*argv, old, *given])
    dest = next(a.dest for _, p in _subparsers(build_parser()) for a in p._actions if new in a.option_strings)
    assert getattr(was, dest) == getattr(now, dest) == value
    assert getattr(default, dest) != value  # the value came from the flag, not a default
