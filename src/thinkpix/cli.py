"""thinkpix: Recursive Sparse Reasoning for diffusion transformers, and a compositional world to measure it.

Each sub-command lives in `thinkpix.commands.<name>` and exposes `register(subparsers)`; this
file only wires them and turns `ThinkpixError` into a one-line error with exit status 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import ThinkpixError

# Order is the order shown in `thinkpix --help`.
COMMANDS = ["demo", "generate", "sample", "train", "finetune", "world", "evaluate", "bench", "lake"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thinkpix", description=__doc__.split("\n")[0])
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
        return int(args.func(args) or 0)
    except ThinkpixError as exc:
        print(f"thinkpix {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
