"""One typed schema for every input. Each config key and each command-line option is declared once, as a
`Spec`: its type, range, unit and meaning (and, where a maximum protects the machine, the reason). The same
declaration checks a YAML value, a dotted override (`key.sub=value`) and a command-line word, and writes
the option's `--help` line, so one wording and one set of limits hold everywhere.

    STEPS = Spec(int, "sampler steps", lo=1, hi=10_000, unit="steps")
    option(parser, "--steps", spec=STEPS, default=20)   # parsed and checked by argparse; --help shows the range
    steps: int = key(20, STEPS)                         # a config dataclass field: YAML and overrides checked

Strict: a bool is never a number (`steps: true` is refused), an integer key takes no fraction, a number
must be finite (NaN and infinities refused), text must be valid UTF-8. After parsing, `check_args` runs
what a single word cannot show: outputs that could not be written or would overwrite a file, inputs that do
not exist, options that apply to a `--pretrained` base only.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

from .errors import ThinkpixError
# `Spec` itself (and `key`, `Word`) lives in the lowest layer (`thinkpix.spec`), so that rsr/ declares its keys too
from .spec import Spec, Word, key  # noqa: F401


# ---- config dataclasses ------------------------------------------------------------------------------
def spec_of(field: dataclasses.Field, hint) -> Spec:
    """The Spec of a config field: its declaration, else one from its type hint (strict type, no range)."""
    if "spec" in field.metadata:
        return field.metadata["spec"]
    typ = {"int": int, "float": float, "str": str, "bool": bool}.get(hint, hint) if isinstance(hint, str) else hint
    return Spec(typ if typ in (int, float, str, bool) else str, field.name)


def config_keys(cls, prefix: str = "") -> list[tuple[str, Spec, object]]:
    """(dotted key, Spec, default) of every leaf field of config dataclass `cls`, in declaration order."""
    import typing

    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out += config_keys(type(default), f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, spec_of(f, hints[f.name]), default))
    return out


def keys_help(cls, title: str) -> str:
    """A --help section listing every config key of `cls` with its type, range, unit, default and meaning."""
    rows = [f"{title}:"]
    for dotted, spec, default in config_keys(cls):
        rows.append(f"  {dotted} = {default!r}  ({spec.describe()}): {spec.help}")
    return "\n".join(rows)


# ---- command-line options ----------------------------------------------------------------------------
class _ArgType:
    """argparse `type=`: a word read as the Spec's type; argparse prefixes the option's name to an error."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.__name__ = spec.type.__name__  # argparse names the type in some messages

    def __call__(self, word: str):
        """The word as the Spec's type; its choices, range, finiteness and text rules are checked by
        `check_args` after parsing, so that `main` returns 2 for them with the command's name."""
        spec = self.spec
        try:
            if spec.type is int and not re.fullmatch(r"\s*[+-]?\d+\s*", word):
                raise ThinkpixError(f"must be an integer, got {word!r}")
            value = int(word) if spec.type is int else float(word) if spec.type is float else word
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {word!r}") from None
        except ThinkpixError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value


def option(parser, *flags: str, spec: Spec, default=None, **kwargs):
    """`parser.add_argument` of an option declared by `spec`: parsed and checked by it, its --help line
    carrying the type, range and unit. Bool specs are switches (store_true)."""
    shown = "" if default in (None, argparse.SUPPRESS) or spec.type is bool else f"; default {default}"
    kwargs["help"] = f"{kwargs.get('help', spec.help)} [{spec.describe()}{shown}]"
    if spec.type is bool:
        action = parser.add_argument(*flags, action="store_true", default=default or False, **kwargs)
    else:
        if spec.choices and "metavar" not in kwargs:
            kwargs["metavar"] = "|".join(map(str, spec.choices))
        action = parser.add_argument(*flags, type=_ArgType(spec), default=default, **kwargs)
    action.spec = spec
    return action


def option_name(action) -> str:
    """An option's name as the user types it: the first long flag (or -n), or a positional's metavar."""
    if not action.option_strings:
        return action.metavar or action.dest
    longs = [s for s in action.option_strings if s.startswith("--")]
    return "-n" if "-n" in action.option_strings else (longs or action.option_strings)[0]


def chosen_actions(parser, args) -> list:
    """The actions of the parser and of every sub-command parser that `args` went through."""
    actions, current = [], parser
    while current is not None:
        actions += current._actions
        subs = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        current = subs[0].choices.get(getattr(args, subs[0].dest, None)) if subs else None
    return actions


def check_args(parser, args) -> None:
    """After parsing: every declared option's value checked again (deprecated spellings and values set from a
    flags YAML included), then outputs, inputs and options that need a --pretrained base (see the module
    docstring). Writes and deletes nothing."""
    from .validation import input_file, output_path

    declared = [a for a in chosen_actions(parser, args) if getattr(a, "spec", None) is not None]
    for action in declared:
        value = getattr(args, action.dest, None)
        if value is not None:
            for item in value if isinstance(value, list) else [value]:
                action.spec.check(item, option_name(action))
    for action in declared:
        spec, value, name = action.spec, getattr(args, action.dest, None), option_name(action)
        if value is None:
            continue
        if spec.path in ("out-file", "out-dir"):
            kind = "file" if spec.path == "out-file" else "dir"
            output_path(value, name, kind)
            p = Path(value)
            if spec.keep and (p.exists() or p.is_symlink()) and not getattr(args, "overwrite", False):
                raise ThinkpixError(f"{name} {p}: exists; pass --overwrite to replace it (nothing was written)")
    for action in declared:
        spec, value = action.spec, getattr(args, action.dest, None)
        if spec.pretrained_only and value is not None and value != action.default and not getattr(args, "pretrained", None):
            raise ThinkpixError(f"{option_name(action)} {value}: applies to a --pretrained base; a bundled --model "
                                "samples on the CPU at its own size")
    for action in declared:
        value = getattr(args, action.dest, None)
        if action.spec.path == "in-file" and value is not None:
            input_file(value, option_name(action))
