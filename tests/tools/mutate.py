"""Mutation testing of thinkpix: change one small thing in the source, run the tests that should
notice, and report every mutant the tests let live ("survivors"). See docs/testing.md.

    python -m tests.tools.mutate --target named                 # the named mutations
    python -m tests.tools.mutate --target rsr --out benchmarks/results/mutation_rsr.json
    python -m tests.tools.mutate --target evaluation --out benchmarks/results/mutation_evaluation.json
    python -m tests.tools.mutate --target rsr --only recursion.py:57   # one file (and line), to iterate

Two kinds of mutants:
- `named`: hand-written textual mutations (`NAMED`), each the kind of bug the tests once missed;
- generated: every `ast` node of a target's files that one of these rules changes (mutmut-style):
  comparison flips (== !=, < <=, > >=, is / is not, in / not in), arithmetic swaps (+ -, * /, // /,
  ** *), and / or, dropping `not` and unary minus, True <-> False, int n -> n + 1, float x -> x + 1.
  Skipped: docstrings, f-strings, `raise` and `assert` statements, annotations, and any line
  carrying `# pragma: no mutate`.

How a mutant runs: the parent process imports the heavy third-party modules once (torch, diffusers,
peft, numpy, pytest) but never thinkpix; each mutant is a fork that installs an import hook serving
the mutated source for the one changed module, then runs `pytest -x -m "not slow"` on the target's
test files (ordered fastest-killing first) in-process. A mutant is *killed* when pytest fails (or the
run exceeds --timeout), *survives* when every test passes. `--jobs` mutants run side by side.
Nothing is written into the source tree.

Why not mutmut 3 (PyPI's current mutmut): it mutates code inside functions only (its docs point to
mutmut 2 for code outside functions), so module constants such as the evaluator's COUNTING_THRESHOLD (one of the
named mutations) and the RSRConfig defaults would never be mutated. This script
needs no new dependency; mutmut was not installed or tried here.
"""

from __future__ import annotations

import argparse
import ast
import importlib.abc
import importlib.util
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
TESTS = ROOT / "tests"

RSR_TESTS = ["test_rsr_mechanism.py", "test_rsr_reference.py", "test_rsr_backbones.py", "test_rsr_sd3.py",
             "test_rsr_dit.py", "test_rsr_flux.py", "test_rsr_adapters.py"]
EVAL_TESTS = ["test_evaluation_pins.py", "test_bootstrap.py", "test_evaluator.py", "test_evaluator_degraded.py"] + [
    f"test_class_track.py::{t}" for t in (  # the class track's evaluation tests, not its training runs
        "test_class_accuracy_is_exact_on_renders", "test_frechet_distance_matches_the_gaussian_closed_form",
        "test_frechet_distance_of_identical_sets_is_zero", "test_stratified_subsets_keep_every_stratum_and_repeat_no_row",
        "test_subsample_interval_covers_the_true_distance")]
TARGETS = {
    "rsr": {"files": sorted((SRC / "thinkpix" / "rsr").glob("*.py")), "tests": RSR_TESTS},
    "evaluation": {"files": sorted((SRC / "thinkpix" / "evaluation").glob("*.py")), "tests": EVAL_TESTS},
}


@dataclass
class Mutant:
    file: str  # relative to the repository root
    line: int
    description: str
    source: str = ""  # the whole mutated file (not saved in the report)
    status: str = ""  # killed | survived | timeout
    seconds: float = 0.0
    killed_by: str = ""  # the first failing test (or collection error)
    name: str = ""  # named mutants only
    tests: tuple = ()


# ----- the named mutations: each once passed every test -----------------------------------
def _named(name, file, old, new, tests):
    return dict(name=name, file=file, old=old, new=new, tests=tests)


NAMED = [
    _named("T steps compute what one step computes", "src/thinkpix/rsr/recursion.py",
           "u = x_tilde if t == 1 else (ops.modulate(a) if cfg.remodulate else a)", "u = x_tilde", RSR_TESTS),
    _named("no re-injection of x~", "src/thinkpix/rsr/recursion.py",
           "a = s + x_tilde if cfg.reinject else s", "a = s", RSR_TESTS),
    _named("re-modulation ignored", "src/thinkpix/rsr/recursion.py",
           "(ops.modulate(a) if cfg.remodulate else a)", "a", RSR_TESTS),
    _named("grad_steps ignored", "src/thinkpix/rsr/recursion.py",
           "keep_grad = cfg.grad_steps is None or t > steps - cfg.grad_steps", "keep_grad = True", RSR_TESTS),
    _named("sparse expert path drops the LoRA scale", "src/thinkpix/rsr/experts.py",
           "ws = weights.reshape(-1)[order].to(x.dtype) * self.scale", "ws = weights.reshape(-1)[order].to(x.dtype)",
           RSR_TESTS),
    _named("matched LoRA rank halved", "src/thinkpix/integrations/lora.py",
           "round(target_parameters / per_rank)", "round(target_parameters / per_rank / 2)",
           ["test_lora_matching.py", "test_cli_model.py"]),
    _named("counting confidence cut lowered to 0.6 (0.75 before the detector's fix, 0.7 after)",
           "src/thinkpix/evaluation/detect.py", "COUNTING_THRESHOLD = 0.7", "COUNTING_THRESHOLD = 0.6", EVAL_TESTS),
    _named("bootstrap drawn without replacement", "src/thinkpix/evaluation/bootstrap.py",
           "g[rng.integers(len(g), size=(resamples, len(g)))]",
           "g[np.argsort(rng.random((resamples, len(g))), axis=1)]", EVAL_TESTS),
    _named("EMA never updates", "src/thinkpix/training/ema.py",
           "self.shadow[k].lerp_(p.detach().float(), 1 - d)", "self.shadow[k].lerp_(p.detach().float(), 0.0)",
           ["test_training.py::test_ema_follows_the_weights_as_configured", "test_training.py"]),
]


def named_mutants() -> list[Mutant]:
    out = []
    for m in NAMED:
        text = (ROOT / m["file"]).read_text()
        if text.count(m["old"]) != 1:
            raise SystemExit(f"named mutation {m['name']!r}: {m['old']!r} occurs {text.count(m['old'])} times in "
                             f"{m['file']} (the code moved: update NAMED)")
        line = text[:text.index(m["old"])].count("\n") + 1
        out.append(Mutant(m["file"], line, f"{m['old']} -> {m['new']}", text.replace(m["old"], m["new"]),
                          name=m["name"], tests=tuple(m["tests"])))
    return out


# ----- generated mutants --------------------------------------------------------------------------
CMP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
       ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
       ast.Pow: ast.Mult}


def _skipped_ranges(tree: ast.Module) -> list[tuple[int, int]]:
    """Line ranges never mutated: docstrings, raise/assert statements, annotations, f-strings."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.append((first.lineno, first.end_lineno))
        if isinstance(node, (ast.Raise, ast.Assert, ast.JoinedStr, ast.ImportFrom, ast.Import)):
            out.append((node.lineno, node.end_lineno))
        if isinstance(node, ast.AnnAssign):
            out.append((node.annotation.lineno, node.annotation.end_lineno))
        if isinstance(node, ast.arg) and node.annotation is not None:
            out.append((node.annotation.lineno, node.annotation.end_lineno))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            out.append((node.returns.lineno, node.returns.end_lineno))
    return out


def _variants(node: ast.AST):
    """(mutated copy of node, description) for every rule that applies to this node itself."""
    import copy

    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in CMP:
                new = copy.deepcopy(node)
                new.ops[i] = CMP[type(op)]()
                yield new, f"{type(op).__name__} -> {CMP[type(op)].__name__}"
    elif isinstance(node, ast.BinOp) and type(node.op) in BIN:
        new = copy.deepcopy(node)
        new.op = BIN[type(node.op)]()
        yield new, f"{type(node.op).__name__} -> {type(new.op).__name__}"
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield new, f"{type(node.op).__name__} -> {type(new.op).__name__}"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        yield copy.deepcopy(node.operand), f"drop {type(node.op).__name__}"
    elif isinstance(node, ast.Constant) and not isinstance(node.value, (str, bytes)) and node.value is not None:
        v = node.value
        if isinstance(v, bool):
            yield ast.Constant(not v), f"{v} -> {not v}"
        elif isinstance(v, (int, float)):
            yield ast.Constant(v + 1), f"{v!r} -> {v + 1!r}"


def generated_mutants(path: Path, tests: list[str]) -> list[Mutant]:
    text = path.read_text()
    lines = text.encode().splitlines(keepends=True)
    tree = ast.parse(text)
    skipped = _skipped_ranges(tree)
    rel = str(path.relative_to(ROOT))
    out = []
    for node in ast.walk(tree):
        if not hasattr(node, "lineno") or any(a <= node.lineno <= b for a, b in skipped):
            continue
        if b"pragma: no mutate" in lines[node.lineno - 1]:
            continue
        for new, desc in _variants(node):
            # splice the unparsed mutated node over the node's own extent (byte offsets), in parentheses
            start = sum(len(x) for x in lines[:node.lineno - 1]) + node.col_offset
            end = sum(len(x) for x in lines[:node.end_lineno - 1]) + node.end_col_offset
            raw = b"".join(lines)
            seg = raw[start:end].decode()
            mutated = (raw[:start] + f"({ast.unparse(new)})".encode() + raw[end:]).decode()
            try:
                ast.parse(mutated)
            except SyntaxError:
                continue
            out.append(Mutant(rel, node.lineno, f"{seg.strip()[:60]!r}: {desc}", mutated, tests=tuple(tests)))
    return sorted(out, key=lambda m: (m.line, m.description))


# ----- running one mutant -----------------------------------------------------------------------
class _MutatedSource(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves `source` for module `name` (found at `origin`); every other import is untouched."""

    def __init__(self, name: str, origin: str, source: str):
        self.name, self.origin, self.source = name, origin, source

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        package = [str(Path(self.origin).parent)] if self.origin.endswith("__init__.py") else None
        return importlib.util.spec_from_file_location(fullname, self.origin, loader=self,
                                                      submodule_search_locations=package)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(compile(self.source, self.origin, "exec"), module.__dict__)


def _module_name(rel: str) -> str:
    parts = Path(rel).relative_to("src").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class _FirstFailure:
    """pytest plugin: remembers the first failing test (or collection error) of the run."""

    def __init__(self):
        self.nodeid = ""

    def pytest_runtest_logreport(self, report):
        if report.failed and not self.nodeid:
            self.nodeid = report.nodeid

    def pytest_collectreport(self, report):
        if report.failed and not self.nodeid:
            self.nodeid = f"collecting {report.nodeid}"


def _report_path(parent: int, child: int) -> Path:
    """Where a mutant's child writes its first failure for the parent."""
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"thinkpix-mutant-{parent}-{child}"


def _child(m: Mutant) -> int:
    sys.meta_path.insert(0, _MutatedSource(_module_name(m.file), str(ROOT / m.file), m.source))
    sys.path.insert(0, str(SRC))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    import pytest

    args = [str(TESTS / t) for t in m.tests] + ["-x", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                                                 "--rootdir", str(ROOT)]
    first = _FirstFailure()
    rc = int(pytest.main(args, plugins=[first]))
    _report_path(os.getppid(), os.getpid()).write_text(first.nodeid)
    return rc


def run_all(mutants: list[Mutant], jobs: int, timeout: float, log, after_each=None) -> None:
    pending, running = list(mutants), {}
    done = 0
    while pending or running:
        while pending and len(running) < jobs:
            m = pending.pop(0)
            pid = os.fork()
            if pid == 0:
                try:
                    rc = _child(m)
                except BaseException:
                    rc = 99
                os._exit(rc)
            running[pid] = (m, time.monotonic())
        time.sleep(0.05)
        for pid, (m, t0) in list(running.items()):
            got, status = os.waitpid(pid, os.WNOHANG)
            elapsed = time.monotonic() - t0
            if got == 0 and elapsed > timeout:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                m.status = "timeout"
            elif got == 0:
                continue
            else:
                rc = os.waitstatus_to_exitcode(status)
                m.status = "survived" if rc == 0 else "killed" if rc in (1, 2) else f"error({rc})"
            m.seconds = round(elapsed, 1)
            report = _report_path(os.getpid(), pid)
            if report.exists():
                m.killed_by = report.read_text()
                report.unlink()
            del running[pid]
            done += 1
            print(f"[{done}/{len(mutants)}] {m.status:8s} {m.seconds:6.1f}s {m.file}:{m.line} "
                  f"{m.name or m.description}  [{m.killed_by}]", file=log, flush=True)
            if after_each:
                after_each()


def _preimport():
    """Heavy third-party imports, once, in the parent (never thinkpix: each fork imports its own)."""
    import numpy  # noqa: F401
    import peft  # noqa: F401
    import PIL.Image  # noqa: F401
    import pytest  # noqa: F401
    import safetensors.torch  # noqa: F401
    import torch
    from diffusers import DiTTransformer2DModel, FluxTransformer2DModel, SD3Transformer2DModel  # noqa: F401
    from diffusers.models.attention_dispatch import dispatch_attention_fn  # noqa: F401

    torch.set_num_threads(1)
    assert not any(k == "thinkpix" or k.startswith("thinkpix.") for k in sys.modules), "thinkpix imported early"


def _key(record: dict) -> tuple:
    return record["file"], record["line"], record["description"]


def _counts(mutants: list[Mutant]) -> dict:
    counts = {}
    for m in mutants:
        counts[m.status or "not run"] = counts.get(m.status or "not run", 0) + 1
    return counts


def _write_report(path, command: str, target: str, mutants: list[Mutant], seconds: float) -> None:
    """The JSON report: counts, survivors first, then every mutant (its status, time and first failing test)."""
    rows = [{k: v for k, v in asdict(m).items() if k not in ("source", "tests")} for m in mutants]
    report = {"command": command, "target": target, "tests": sorted({t for m in mutants for t in m.tests}),
              "mutants": len(mutants), "counts": _counts(mutants), "seconds_this_run": round(seconds),
              "survivors": [r for r in rows if r["status"] == "survived"], "all": rows}
    tmp = Path(str(path) + ".tmp")
    from thinkpix.files import portable

    tmp.write_text(json.dumps(portable(report), indent=1) + "\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", choices=["named", *TARGETS], required=True)
    p.add_argument("--only", default=None,
                   help="FILE or FILE:LINE (file name within the target), or several joined by commas, to restrict to")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--timeout", type=float, default=240.0, help="seconds per mutant before it counts as killed")
    p.add_argument("--limit", type=int, default=0, help="run at most this many mutants (0: all)")
    p.add_argument("--sample", type=int, default=0, help="run a seeded random sample of this many mutants (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample")
    p.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    p.add_argument("--out", default=None, help="JSON report, rewritten after every mutant (default: summary only)")
    p.add_argument("--resume", action="store_true", help="keep the statuses already in --out; run the rest")
    p.add_argument("--no-control", action="store_true", help="skip the unmutated control run (quick looks only)")
    p.add_argument("--tests", default=None, help="comma-separated test files or node ids to run instead of the target's")
    a = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if a.target == "named":
        mutants = named_mutants()
    else:
        t = TARGETS[a.target]
        mutants = [m for f in t["files"] for m in generated_mutants(f, t["tests"])]
    if a.only:
        wanted = [w.partition(":") for w in a.only.split(",")]
        mutants = [m for m in mutants if any(Path(m.file).name == f and (not line or m.line == int(line))
                                             for f, _, line in wanted)]
    if a.tests:
        for m in mutants:
            m.tests = tuple(a.tests.split(","))
    if a.sample:  # a seeded random sample, when the whole target does not fit the time
        import random

        mutants = sorted(random.Random(a.seed).sample(mutants, min(a.sample, len(mutants))),
                         key=lambda m: (m.file, m.line, m.description))
    if a.limit:
        mutants = mutants[:a.limit]
    if a.list:
        for m in mutants:
            print(f"{m.file}:{m.line} {m.name or m.description}")
        print(f"{len(mutants)} mutants")
        return 0
    done = {}
    if a.resume and a.out and Path(a.out).is_file():  # keep what an earlier (interrupted) run decided
        done = {_key(r): r for r in json.loads(Path(a.out).read_text())["all"] if r["status"]}
        for m in mutants:
            for k in ("status", "seconds", "killed_by"):
                setattr(m, k, done.get(_key(asdict(m)), {}).get(k, getattr(m, k)))
    todo = [m for m in mutants if not m.status]
    _preimport()
    t0 = time.monotonic()
    # control: the unchanged source through the same machinery must pass every test, or nothing counts
    controls = {}
    for m in [] if a.no_control else todo:
        key = tuple(m.tests)
        if key not in controls:
            controls[key] = Mutant(m.file, 0, "control (unmutated)", (ROOT / m.file).read_text(), tests=key)
    run_all(list(controls.values()), a.jobs, a.timeout, sys.stdout)
    if any(c.status != "survived" for c in controls.values()):
        print("control run failed: the unmutated tests do not pass; fix that first", file=sys.stderr)
        return 1
    command = "python -m tests.tools.mutate " + " ".join(argv if argv is not None else sys.argv[1:])
    save = (lambda: _write_report(a.out, command, a.target, mutants, time.monotonic() - t0)) if a.out else None
    run_all(todo, a.jobs, a.timeout, sys.stdout, save)
    counts = _counts(mutants)
    print(f"{len(mutants)} mutants ({len(todo)} run now) in {time.monotonic() - t0:.0f} s: {counts}")
    if save:
        save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
