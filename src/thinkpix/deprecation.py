"""Old spellings that still work, each with a warning naming the one to use instead.

In Python a `ThinkpixDeprecationWarning` (a `DeprecationWarning`); on the command line (`cli.main`
calls `show_on_command_line`) one line on stderr, `thinkpix: warning: OLD is deprecated; use NEW`,
once per spelling and run.
"""

from __future__ import annotations

import argparse
import warnings


class ThinkpixDeprecationWarning(DeprecationWarning):
    """An old spelling of a thinkpix name, flag or key."""


def deprecated(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that `old` is deprecated in favour of `new` (stacklevel 3: the caller's caller)."""
    warnings.warn(f"{old} is deprecated; use {new}", ThinkpixDeprecationWarning, stacklevel=stacklevel)


def show_on_command_line() -> None:
    """Show each thinkpix deprecation once, as one line (Python hides DeprecationWarning from libraries)."""
    warnings.filterwarnings("once", category=ThinkpixDeprecationWarning)
    if getattr(warnings.formatwarning, "_thinkpix", False):
        return
    original = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None):
        if issubclass(category, ThinkpixDeprecationWarning):
            return f"thinkpix: warning: {message}\n"
        return original(message, category, filename, lineno, line)

    one_line._thinkpix = True
    warnings.formatwarning = one_line


class DeprecatedFlag(argparse.Action):
    """A hidden old spelling of a flag: stores into the new flag's dest and warns.
    `parser.add_argument(OLD, dest=NEW_DEST, action=DeprecatedFlag, new=NEW, type=..., help=SUPPRESS)`."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        deprecated(option_string, self.new, stacklevel=2)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_alias(parser, old: str, new: str, dest: str, **kwargs) -> None:
    """Register `old` as a hidden, deprecated spelling of flag `new` (same dest); kwargs: type, or
    nargs=0 with const for a switch."""
    parser.add_argument(old, dest=dest, action=DeprecatedFlag, new=new, default=argparse.SUPPRESS, **kwargs)


def add_aliases(parser, action, *olds: str) -> None:
    """Register each of `olds` as a hidden, deprecated spelling of the option `action` (what `add_argument`
    or `schema.option` returned): same dest, same word type; a switch stays a switch."""
    new = next(s for s in action.option_strings if s.startswith("--"))
    for old in olds:
        if action.nargs == 0:
            add_alias(parser, old, new, action.dest, nargs=0, const=True)
        else:
            add_alias(parser, old, new, action.dest, type=action.type)
