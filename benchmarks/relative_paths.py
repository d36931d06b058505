"""Rewrite absolute paths in committed results files as paths relative to a run folder (one-off
migration; the writers store relative paths themselves through `thinkpix.files.portable`).

    python -m benchmarks.relative_paths --runs /old/machine/runs --checkout /old/machine/repo \
        --rename OLD=NEW ... benchmarks/results/*.json benchmarks/results/*.md

Every path under `--runs` becomes relative to it (its first folder renamed by `--rename`), every
path under a `--checkout` (a repository copy the run was made from) relative to that checkout. The
file is edited as text, so numbers, key order and layout stay byte-for-byte what they were. Paths
under neither are reported and left alone.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_PATH = re.compile(r"""(?:(?<=^)|(?<=[\s"'`=+,:(\[]))(?:~|/)[^\s"'`,;+)\]]*""", re.M)


def relative(text: str, runs: list[str], checkouts: list[str], rename: dict[str, str]) -> tuple[str, list[str]]:
    """(`text` with its absolute paths rewritten, the absolute paths it could not place)."""
    left = []

    def one(match: re.Match) -> str:
        path = match.group(0)
        for root in runs:
            if path.startswith(root.rstrip("/") + "/"):
                rest = path[len(root.rstrip("/")) + 1:]
                first, _, tail = rest.partition("/")
                first = rename.get(first, first)
                return f"{first}/{tail}" if tail else first
        for root in checkouts:
            if path.startswith(root.rstrip("/") + "/"):
                return path[len(root.rstrip("/")) + 1:]
        if len(path) > 1:
            left.append(path)
        return path

    return _PATH.sub(one, text), left


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--runs", action="append", default=[], help="a run folder prefix (repeatable, e.g. ~/runs and its expansion)")
    p.add_argument("--checkout", action="append", default=[], help="a repository checkout prefix (repeatable)")
    p.add_argument("--rename", action="append", default=[], help="OLD=NEW: rename a run folder's first level")
    args = p.parse_args(argv)
    rename = dict(r.split("=", 1) for r in args.rename)
    for name in args.files:
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        new, left = relative(text, args.runs, args.checkout, rename)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"rewrote {path}")
        for other in sorted(set(left)):
            print(f"{path}: left alone: {other}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
