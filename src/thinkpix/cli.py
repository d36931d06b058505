"""thinkpix: Recursive Sparse Reasoning for diffusion transformers, and a compositional world to measure it.

Each sub-command lives in `thinkpix.commands.<name>` and exposes `register(subparsers)`; this
file only wires them. Every option is declared once with its type and range (`thinkpix.schema`) and
checked before any work starts, and this is the one place that turns an input error (`ThinkpixError`, a command-line error, an
unreadable or unwritable file) into a one-line message with exit status 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from .deprecation import show_on_command_line
from .errors import ThinkpixError
from .schema import check_args

# Order is the order shown in `thinkpix --help`.
COMMANDS = ["demo", "generate", "sample", "train", "finetune", "world", "evaluate", "lake", "serve"]


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors as one line (`thinkpix CMD: error: ...`), exit status 2.
    Sub-command parsers inherit the class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="thinkpix", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"thinkpix.commands.{name}")
        except ModuleNotFoundError as exc:  # a command not written yet
            if exc.name == f"thinkpix.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    show_on_command_line()  # an old spelling (e.g. --think-steps): one warning line on stderr
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling `overrides` at the first option, so `train CONFIG --export DIR key=value`
    # leaves key=value over: it belongs with the overrides. Anything else left over is an error as usual.
    if extra and isinstance(getattr(args, "overrides", None), list) and all(
            "=" in x and not x.startswith("-") for x in extra):
        args.overrides.extend(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        check_args(parser, args)
        return int(args.func(args) or 0)
    except ThinkpixError as exc:
        return _fail(args, str(exc))
    except (OSError, UnicodeError) as exc:  # a file that vanished, a full disk, undecodable bytes
        where = getattr(exc, "filename", None)
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _fail(args, f"{where}: {what}" if where else what)
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":
            raise
        return _fail(args, f"could not write or read a safetensors file ({exc})")  # writers name the file first
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _fail(args, message: str) -> int:
    line = " ".join(message.split())  # always one line
    print(f"thinkpix {args.command}: error: {line}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
