"""`Spec`: what one input is (type, range, unit, meaning, and the reason for a maximum that protects the
machine), and the strict checks behind it. The lowest layer, so that every part of the package declares its
inputs with it: the RSR config's keys (`rsr/config.py`), the training-config keys, every command-line option
(`thinkpix.schema` builds argparse options and --help from these declarations).

Strict: a bool is never a number, an integer takes no fraction, a number must be finite (NaN and infinities
refused), text must be valid UTF-8 and at most MAX_PROMPT_CHARS long.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass

from .errors import ThinkpixError

MAX_PROMPT_CHARS = 2000
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
    ranges: bool = False  # text: integers and low-high ranges ('4,5', '4-6', '4-5,7'), each in [lo, hi]

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
            if self.ranges:  # the ends checked before any list is made (a range may be huge)
                bounds = range_bounds(value, name)
                self._check_range(min(lo for lo, _ in bounds), name)
                self._check_range(max(hi for _, hi in bounds), name)
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
        if self.ranges:
            words = "integers and ranges like 4,5 or 4-6"
            words += f", each in {self.interval()}" if (self.lo is not None or self.hi is not None) else ""
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
    if not isinstance(value, str):
        raise _error(name, f"must be text, got {type(value).__name__} {value!r}")
    return text(value, name or "value", allow_empty=allow_empty)


def text(value, name: str, allow_empty: bool = True) -> str:
    """A string that is valid Unicode (a non-UTF-8 command-line word arrives as lone surrogates), at most
    MAX_PROMPT_CHARS long."""
    if not isinstance(value, str):
        raise ThinkpixError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ThinkpixError(f"{name} is not valid UTF-8 text") from None
    if not allow_empty and not value.strip():
        raise ThinkpixError(f"{name} must not be empty")
    if len(value) > MAX_PROMPT_CHARS:
        raise ThinkpixError(f"{name} is {len(value)} characters long (at most {MAX_PROMPT_CHARS})")
    return value


def int_ranges(value: str, name: str | None = None) -> list[int]:
    """'4,5' or '4-6' or '4-5,7' -> sorted distinct ints; a reversed ('8-4'), open ('4-', '-4') or empty range
    refused. Check the ends with a `ranges` Spec first: a range may be huge."""
    values: set[int] = set()
    for lo, hi in range_bounds(value, name):
        values.update(range(lo, hi + 1))
    return sorted(values)


def range_bounds(value: str, name: str | None = None) -> list[tuple[int, int]]:
    """'4-5,7' -> [(4, 5), (7, 7)]; ThinkpixError for a reversed, open or empty range."""
    bounds = []
    for part in str(value).split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            lo_i, hi_i = int(lo), int(hi if dash else lo)
        except ValueError:
            raise _error(name, f"expected integers like '4,5' or '4-6', got {value!r} (an open range such as "
                               "'4-' names no end)") from None
        if lo_i > hi_i:
            raise _error(name, f"range {part.strip()!r} in {value!r} is reversed; write it low-high, e.g. "
                               f"'{hi_i}-{lo_i}'")
        bounds.append((lo_i, hi_i))
    return bounds


class Word(str):
    """The text right of `=` in a dotted override: parsed by the key's own Spec (`Spec.parse`), not by YAML."""


def key(default, spec: Spec):
    """A config dataclass field declared with its Spec (`field.metadata['spec']`)."""
    return dataclasses.field(default=default, metadata={"spec": spec})
