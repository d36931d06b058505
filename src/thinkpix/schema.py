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
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ThinkpixError

PATH_KINDS = ("", "in-file", "out-file", "out-dir", "input")  # input: a file or folder read (checked when opened)
_SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")  # YAML 1.1 reads 1e-4 as text: a number here


@dataclass(frozen=True)
class Spec:
    """What one input is: `type` (int, float, str or bool), its meaning, its range [lo, hi] (open ends with
    lo_open / hi_open), unit, allowed values, and `why_max`, the reason for a maximum that protects the machine."""

    type: type
    help: str
    lo: float | None = None
    hi: float | None = None
    unit: str = ""
    choices: tuple = ()
    lo_open: bool = False
    hi_open: bool = False
    why_max: str = ""
    empty: bool = True  # text: may be empty
    pattern: str = ""  # text: must match this regular expression in full (`pattern_help` says what it means)
    pattern_help: str = ""
    path: str = ""  # one of PATH_KINDS
    keep: bool = False  # out-file: an existing file is refused unless --overwrite
    pretrained_only: bool = False  # applies to a --pretrained base; another value than the default is refused without
    nullable: bool = False  # None (not given) allowed

    def __post_init__(self):
        assert self.type in (int, float, str, bool), self.type
        assert self.path in PATH_KINDS, self.path

    # ---- checking -------------------------------------------------------------------------------------
    def check(self, value, name: str | None):
        """`value` (from YAML, an override, a dataclass or a parsed word) as this type, in range; else a
        one-line ThinkpixError naming `name` (None: the caller names it, as argparse does)."""
        if value is None and self.nullable:
            return None
        if self.type is bool:
            if not isinstance(value, bool):
                raise _error(name, f"must be true or false, got {value!r}")
            return value
        if self.type is int:
            value = _as_int(value, name)
        elif self.type is float:
            value = _as_float(value, name)
        else:
            value = _as_text(value, name, self.empty)
            if self.pattern and not re.fullmatch(self.pattern, value):
                raise _error(name, f"must be {self.pattern_help or 'of the form ' + self.pattern}, got {value!r}")
        if self.choices and value not in self.choices:
            raise _error(name, f"must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        if self.type in (int, float):
            self._check_range(value, name)
        return value

    def parse(self, word: str, name: str | None):
        """A command-line word (a flag's value or the right side of `key=value`) as this type, then `check`:
        an integer takes digits (or an integral 1e6), a switch true or false."""
        if self.type is bool:
            if word.strip().lower() not in ("true", "false"):
                raise _error(name, f"must be true or false, got {word!r}")
            return word.strip().lower() == "true"
        if self.type is int:
            if not (re.fullmatch(r"\s*[+-]?\d+\s*", word) or _SCIENTIFIC.fullmatch(word.strip())):
                raise _error(name, f"must be an integer, got {word!r}")
            return self.check(int(word) if word.strip().lstrip("+-").isdigit() else word.strip(), name)
        if self.type is float:
            try:
                value = float(word)
            except ValueError:
                raise _error(name, f"must be a number, got {word!r}") from None
            return self.check(value, name)
        return self.check(word, name)

    def _check_range(self, value, name) -> None:
        below = self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)
        above = self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi)
        if above and self.why_max:
            raise _error(name, f"must be at most {_num(self.hi)}, got {value}: {self.why_max}")
        if below or above:
            raise _error(name, f"must be in {self.interval()}, got {value}")

    # ---- describing ------------------------------------------------------------------------------------
    def interval(self) -> str:
        left, right = ("(" if self.lo_open else "["), (")" if self.hi_open else "]")
        lo = "-inf" if self.lo is None else _num(self.lo)
        hi = "inf" if self.hi is None else _num(self.hi)
        return f"{left}{lo}, {hi}{right}"

    def describe(self) -> str:
        """Type, range and unit in a few words, e.g. 'int in [1, 10000] steps' (what --help shows)."""
        if self.type is bool:
            return "switch" if not self.nullable else "true|false"
        words = {int: "int", float: "number", str: "text"}[self.type]
        if self.path:
            words = {"in-file": "file (read)", "out-file": "file (written)", "out-dir": "folder (written)",
                     "input": "file or folder (read)"}[self.path]
        if self.choices:
            words = "one of " + ", ".join(map(str, self.choices))
        elif self.type in (int, float):
            words += f" in {self.interval()}" if (self.lo is not None or self.hi is not None) else ", finite"
        if self.pattern_help:
            words += f", {self.pattern_help}"
        if self.unit:
            words += f" {self.unit}"
        if self.why_max:
            words += f"; max because {self.why_max}"
        return words


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _error(name, message: str) -> ThinkpixError:
    return ThinkpixError(f"{name} {message}" if name else message)


def np_bool():
    """NumPy's bool type when NumPy is loaded (a numpy.bool_ is no number either), else bool."""
    import sys

    numpy = sys.modules.get("numpy")
    return numpy.bool_ if numpy is not None else bool


def _as_int(value, name):
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, (bool, np_bool())) or not isinstance(value, numbers.Real):
        raise _error(name, f"must be an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise _error(name, f"must be an integer, got {value!r}")
        value = int(value)
    return value


def _as_float(value, name):
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, (bool, np_bool())) or not isinstance(value, numbers.Real):
        raise _error(name, f"must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise _error(name, f"must be a finite number, got {value}")
    return value


def _as_text(value, name, allow_empty: bool) -> str:
    from .validation import text

    if not isinstance(value, str):
        raise _error(name, f"must be text, got {type(value).__name__} {value!r}")
    return text(value, name or "value", allow_empty=allow_empty)


class Word(str):
    """The text right of `=` in a dotted override: parsed by the key's own Spec (`Spec.parse`), not by YAML."""


# ---- config dataclasses ------------------------------------------------------------------------------
def key(default, spec: Spec):
    """A config dataclass field declared with its Spec (`field.metadata['spec']`)."""
    return dataclasses.field(default=default, metadata={"spec": spec})


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
                raise _error(None, f"must be an integer, got {word!r}")
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
