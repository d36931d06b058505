"""What a reader of a clone sees: no work-period bookkeeping (session / round / item / issue numbers)
and no machine paths (home directories, /root/) in the README, the docs, the experiments, the
committed results or the package; every script a doc command names exists; every experiment script
is listed in docs/lab/ and runs from a clone with a run folder (checked with stand-ins that only log
their arguments); results files are written with paths relative to the run folder."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from thinkpix.files import portable

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("README.md", "docs", "experiments", "benchmarks/results", "src")
FORBIDDEN = re.compile(r"\b(session|round|item|issue) [0-9]+|~/|/root/|/home/", re.IGNORECASE)
SKIPPED_PARTS = ("__pycache__", ".egg-info")
# A doc command or link naming a script: experiments/NAME.sh, benchmarks/NAME.py|sh, python -m benchmarks.NAME.
SCRIPT = re.compile(r"(?<![\w/.])((?:experiments|benchmarks)/[\w.-]+\.(?:sh|py))|python -m (benchmarks\.\w+)")


def _text_files():
    for top in SCANNED:
        path = ROOT / top
        for f in [path] if path.is_file() else sorted(path.rglob("*")):
            if not f.is_file() or any(part.endswith(SKIPPED_PARTS) for part in f.parts):
                continue
            try:
                yield f, f.read_text(encoding="utf-8")
            except UnicodeDecodeError:  # weights, images
                continue


def _offences(text: str) -> list[str]:
    return [text[max(0, m.start() - 30):m.end() + 30].replace("\n", " ") for m in FORBIDDEN.finditer(text)]


# The reviewer's check, verbatim: grep -rnIE "(session|round|item|issue) [0-9]+|~/|/root/|/home/" on SCANNED.
REVIEW_GREP = re.compile(r"(session|round|item|issue) [0-9]+|~/|/root/|/home/")


def test_no_bookkeeping_numbers_or_machine_paths():
    found = {str(f.relative_to(ROOT)): hits for f, text in _text_files() if (hits := _offences(text))}
    assert not found, f"work-period numbers or machine paths: {found}"
    grep = {str(f.relative_to(ROOT)): [m.group(0) for m in REVIEW_GREP.finditer(text)]
            for f, text in _text_files() if REVIEW_GREP.search(text)}
    assert not grep, f"the review grep finds: {grep}"


def test_the_pattern_catches_what_it_should_and_nothing_else():
    for bad in ("as in issue 12", "Session 5 measured", "round 1", "item 4's table", "R=~/runs", "/root/x",
                "/home/me/x"):
        assert _offences(bad), bad
    for fine in ("issue12_item5.json", "rounded squares", "items 1-3", "an issue: 2", "runs/ft_rsr", "a/root"):
        assert not _offences(fine), fine


def _doc_scripts():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for m in SCRIPT.finditer(doc.read_text(encoding="utf-8")):
            path = m.group(1) or m.group(2).replace(".", "/") + ".py"
            yield doc.relative_to(ROOT).as_posix(), path


def test_every_script_a_doc_names_exists():
    named = list(_doc_scripts())
    assert any(p.startswith("experiments/") for _, p in named) and any(p.startswith("benchmarks/") for _, p in named)
    missing = sorted({f"{doc}: {path}" for doc, path in named if not (ROOT / path).is_file()})
    assert not missing, f"doc commands name scripts that do not exist: {missing}"


EXPERIMENTS = sorted(p.name for p in (ROOT / "experiments").glob("*.sh") if not p.name.startswith("_"))


def test_every_experiment_is_listed_in_the_lab_index_with_its_page():
    index = (ROOT / "docs" / "lab" / "index.md").read_text(encoding="utf-8")
    rows = [line for line in index.splitlines() if line.startswith("| ") and "experiments/" in line]
    for name in EXPERIMENTS:
        row = next((r for r in rows if f"experiments/{name}" in r), None)
        assert row, f"experiments/{name} is not listed in docs/lab/index.md"
        page = re.search(r"\]\(([\w.-]+\.md)\)", row).group(1)
        assert (ROOT / "docs" / "lab" / page).is_file(), page
        assert f"experiments/{name}" in (ROOT / "docs" / "lab" / page).read_text(encoding="utf-8"), (name, page)


def test_every_lab_index_row_names_results_files_that_exist():
    """The index's results column: files under benchmarks/results/ (or a path from the repository's root),
    a glob or a folder; 'none (...)' where the record stayed in the runs; '(not yet written)' for a protocol."""
    index = (ROOT / "docs" / "lab" / "index.md").read_text(encoding="utf-8")
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in index.splitlines()
            if line.startswith("| ") and "experiments/" in line]
    assert rows and all(len(r) == 4 for r in rows)
    missing = []
    for question, _, _, results in rows:
        if results.startswith("none"):
            continue
        names = re.findall(r"`([^`]+)`( \(not yet written\))?", results)
        assert names, f"no results file for: {question}"
        for name, unwritten in names:
            path = ROOT / name if "/" in name.rstrip("/") else ROOT / "benchmarks" / "results" / name
            exists = bool(list(path.parent.glob(path.name))) if "*" in name else path.exists()
            if exists == bool(unwritten):
                missing.append(f"{name} ({'written: drop the marker' if exists else 'missing'})")
    assert not missing, f"docs/lab/index.md: results files not as the index says: {missing}"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs_from_a_clone_into_its_run_folder(name, tmp_path):
    """With stand-ins for thinkpix / torchrun / python / cp that only log, the script runs to the end, every
    run it makes goes under RUNS, and every results file it writes is a committed one."""
    log, stubs = tmp_path / "calls.log", tmp_path / "bin"
    stubs.mkdir()
    for tool in ("thinkpix", "torchrun", "python", "cp"):
        (stubs / tool).write_text(f'#!/bin/bash\necho "{tool} $*" >> {log}\n')
        (stubs / tool).chmod(0o755)
    runs = tmp_path / "runs"
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}", PYTHON="python")
    done = subprocess.run(["bash", str(ROOT / "experiments" / name), str(runs)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls, "the script ran nothing"
    commands = "\n".join(c.replace("-m thinkpix.cli ", "thinkpix ") for c in calls if "thinkpix" in c)
    bad = _unknown_flags(commands)[1]
    assert not bad, f"{name}: thinkpix flags that do not exist or are deprecated: {sorted(set(bad))}"
    for call in calls:
        for flag, value in re.findall(r"(--out |--output_dir |--work |--runs? |out_dir=)(\S+)", call):
            if value.startswith(("benchmarks/results/", "docs/figures/", "experiments/results/")):
                assert flag == "--out " and (ROOT / value).parent.is_dir(), call
                if value.startswith("benchmarks/results/"):
                    assert (ROOT / value).is_file(), f"{name} writes {value}, which is not a committed results file"
            else:
                assert value.startswith(str(runs)), f"{name}: {flag} {value} is outside the run folder"
    usage = subprocess.run(["bash", str(ROOT / "experiments" / name)], env=env, capture_output=True, text=True)
    assert usage.returncode != 0  # no run folder: a usage line, nothing run


def test_results_are_written_with_paths_relative_to_the_run_folder(tmp_path, monkeypatch):
    runs, repo = tmp_path / "runs", tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    monkeypatch.chdir(repo)
    record = {"command": f"python -m benchmarks.x --arm a={runs}/shift/a/adapter --arm b={runs}/x/final+{runs}/y/adapter "
                         f"--prompts {repo}/data/eval/geneval.jsonl --out benchmarks/results/x.json",
              f"{runs}/shift/a": [{"path": f"{runs}/lake/base_s0/final"}, 0.125, "H / ln M", "/etc/hosts"]}
    out = portable(record, runs)
    assert out == {"command": "python -m benchmarks.x --arm a=shift/a/adapter --arm b=x/final+y/adapter "
                              "--prompts data/eval/geneval.jsonl --out benchmarks/results/x.json",
                   "shift/a": [{"path": "lake/base_s0/final"}, 0.125, "H / ln M", "/etc/hosts"]}
    monkeypatch.setenv("THINKPIX_RUNS", str(runs))
    assert portable(f"--work {runs}/compare") == "--work compare"  # the experiments export THINKPIX_RUNS


def test_the_package_reaches_no_repository_file_and_ships_its_defaults():
    """No module climbs out of the package (`Path(__file__).parents[N]`); the defaults commands fall back
    on are package data, and the clone's configs/ and data/eval/ copies are the same files."""
    from thinkpix.resources import resource

    climbing = [f"{f.relative_to(ROOT)}:{i + 1}" for f in sorted((ROOT / "src" / "thinkpix").rglob("*.py"))
                for i, line in enumerate(f.read_text(encoding="utf-8").splitlines())
                if re.search(r"parents\[[2-9]\]", line)]
    assert not climbing, f"modules reaching into the repository: {climbing}"
    for name, clone in (("configs/finetune_rsr.yaml", "configs/finetune_rsr.yaml"),
                        ("configs/lake_base.yaml", "configs/lake_base.yaml"),
                        ("eval/geneval.jsonl", "data/eval/geneval.jsonl")):
        shipped = resource(name)
        assert ROOT / "src" / "thinkpix" in shipped.resolve().parents
        assert (ROOT / clone).resolve() == shipped.resolve(), clone
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["thinkpix"]
    assert "resources/configs/*.yaml" in data and "resources/eval/*.jsonl" in data
    with pytest.raises(Exception, match="not shipped"):
        resource("configs/no_such.yaml")


# A `thinkpix SUB [SUBSUB] ...` command in a doc (code block or inline code, continuation lines included).
COMMAND = re.compile(r"(?:^|`|\s)thinkpix ([a-z]+(?: [a-z]+)?)((?:[^`\n]|\\\n)*)")


def _unknown_flags(text: str) -> tuple[int, list[str]]:
    """(flags checked, `thinkpix` command flags in `text` that the command's parser does not define, or
    defines only as a deprecated spelling)."""
    import argparse

    from thinkpix.cli import build_parser
    from thinkpix.deprecation import DeprecatedFlag

    def subcommands(parser):
        return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})

    top, checked, unknown = subcommands(build_parser()), 0, []
    for m in COMMAND.finditer(text):
        words = m.group(1).split()
        if words[0] not in top:
            continue  # prose ("thinkpix lets ...")
        parser = top[words[0]]
        if len(words) > 1 and words[1] in subcommands(parser):
            parser = subcommands(parser)[words[1]]
        options = {o for a in parser._actions for o in a.option_strings}
        old = {o for a in parser._actions if isinstance(a, DeprecatedFlag) for o in a.option_strings}
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]*)", m.group(2)):
            checked += 1
            if flag not in options or flag in old:
                unknown.append(f"thinkpix {' '.join(words)} {flag}" + (" (deprecated)" if flag in old else ""))
    return checked, unknown


def test_every_flag_a_doc_command_uses_exists():
    assert _unknown_flags("run `thinkpix generate --no-such-flag x`")[1] == ["thinkpix generate --no-such-flag"]
    assert _unknown_flags("thinkpix lake train configs/lake_base.yaml \\\n    --no_resume")[1] == []
    assert _unknown_flags("`thinkpix finetune --out R`")[1] == ["thinkpix finetune --out (deprecated)"]
    assert _unknown_flags("thinkpix lake finetune --pretrained M --base M")[1] == [
        "thinkpix lake finetune --base (deprecated)"]
    found, total = {}, 0
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        checked, unknown = _unknown_flags(doc.read_text(encoding="utf-8"))
        total += checked
        if unknown:
            found[doc.relative_to(ROOT).as_posix()] = sorted(set(unknown))
    assert total > 50  # the docs' commands were found
    assert not found, f"doc commands use flags their command does not have (or only as an old spelling): {found}"


# The package's layers, bottom first (docs/architecture.md draws the same list). A module may import from
# its own layer and the layers below it, never from a layer above. A module is placed by the longest
# prefix listed; every module must be placed. World definitions (what a world is: its renderer, grammar,
# maps, evaluation sets) sit under the models that are trained on them; the rest of a world package (its
# model glue, training, evaluation, sampling, experiments) sits over the shared mechanics.
LAYERS = (
    ("foundation", ("errors", "version", "deprecation", "files", "imaging", "flow", "precision", "resources",
                    "bundled", "sample_record", "spec")),
    ("rsr", ("rsr",)),
    ("integrations", ("integrations",)),
    ("world definitions", ("worlds.__init__", "worlds.shapes", "worlds.classes.__init__", "worlds.classes.sets",
                           "worlds.lake.__init__", "worlds.lake.maps", "worlds.lake.render", "worlds.lake.sets")),
    ("models", ("models",)),
    ("mechanics", ("validation", "schema", "declarations", "sampling", "training", "evaluation")),
    ("worlds", ("worlds",)),
    ("analysis", ("analysis",)),
    ("front ends", ("commands", "web")),
    ("entry points", ("cli", "__init__")),
)
PACKAGE = ROOT / "src" / "thinkpix"


def _module_name(path: Path) -> str:
    """src/thinkpix/a/b.py -> 'a.b'; a package's __init__.py keeps its '__init__' ('a.__init__')."""
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _layer(module: str) -> int:
    best = max(((len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), default=None)
    if best is None:
        raise AssertionError(f"thinkpix.{module} is in no layer: add it to LAYERS in tests/test_repo_hygiene.py "
                             "and to docs/architecture.md")
    return best[1]


def _imports(path: Path, modules: set[str]):
    """(line, imported module, imported name or None) for every import of thinkpix code in `path`, the
    module resolved to a file ('a.b' or 'a.__init__'); a `from package import submodule` names the submodule."""
    import ast

    own = _module_name(path)
    package = own.split(".")[:-1]

    def resolve(dotted: str) -> str:
        return dotted if dotted in modules else f"{dotted}.__init__" if dotted else "__init__"

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "thinkpix" or alias.name.startswith("thinkpix."):
                    yield node.lineno, resolve(alias.name.partition(".")[2]), None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            elif node.module == "thinkpix" or (node.module or "").startswith("thinkpix."):
                base = node.module.partition(".")[2]
            else:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                if sub in modules or f"{sub}.__init__" in modules:
                    yield node.lineno, resolve(sub), None
                else:
                    yield node.lineno, resolve(base), alias.name


def _package_imports():
    files = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    modules = {_module_name(p) for p in files}
    for path in files:
        for line, target, name in _imports(path, modules):
            yield _module_name(path), line, target, name


def test_every_import_points_down_the_layers():
    up = [f"thinkpix.{src}:{line} ({LAYERS[_layer(src)][0]}) imports thinkpix.{dst} ({LAYERS[_layer(dst)][0]})"
          for src, line, dst, _ in _package_imports() if _layer(dst) > _layer(src)]
    assert not up, "imports that run back up the layers:\n" + "\n".join(up)


def _private(module: str, importer: str) -> bool:
    """Whether `module` (a.b._c) is private to a package that `importer` is not in."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return not importer.startswith(".".join(parts[:i]) + ".") if i else True
    return False


def _private_imports() -> dict:
    return {(src, dst, name): f"thinkpix.{src}:{line} imports {name or 'it'} from thinkpix.{dst}"
            for src, line, dst, name in _package_imports()
            if (name and name.startswith("_") and not name.startswith("__")) or _private(dst, src)}


def test_no_test_imports_a_benchmark_script():
    """Benchmarks are runners; what a test checks lives in the package (thinkpix.analysis) and is imported
    as any other module, never loaded from benchmarks/ by path or by name."""
    pattern = re.compile(r"^\s*(from benchmarks\b|import benchmarks\b)|spec_from_file_location", re.MULTILINE)
    assert pattern.search("    from benchmarks import bench_training\n") and not pattern.search("x = 'benchmarks/'\n")
    found = [f.name for f in sorted((ROOT / "tests").glob("*.py")) if pattern.search(f.read_text(encoding="utf-8"))
             and f.name != Path(__file__).name]
    assert not found, f"tests importing benchmark scripts: {found}"


def test_no_private_name_is_imported_across_modules():
    found = _private_imports()
    assert not found, "private names imported across modules:\n" + "\n".join(found.values())


def test_the_layer_checks_see_what_they_should(tmp_path):
    assert _layer("models.sampler") < _layer("sampling") < _layer("commands.lake") == _layer("web.app") < _layer("cli")
    assert _layer("worlds.lake.maps") < _layer("models.t2i") < _layer("worlds.lake.ladder")
    with pytest.raises(AssertionError, match="in no layer"):
        _layer("no_such_module")
    assert _private("commands._common", "web.app") and not _private("commands._common", "commands.lake")
    assert not _private("integrations.attach", "web.app") and not _private("worlds.__init__", "models.c2i")
    global PACKAGE
    fake = tmp_path / "thinkpix"
    (fake / "models").mkdir(parents=True)
    (fake / "models" / "__init__.py").write_text("")
    (fake / "sampling.py").write_text("def _integrate(): pass\n")
    (fake / "models" / "t2i.py").write_text("from .. import sampling\nfrom thinkpix.sampling import _integrate\n")
    saved, PACKAGE = PACKAGE, fake
    try:
        seen = list(_package_imports())
        assert ("models.t2i", 1, "sampling", None) in seen and ("models.t2i", 2, "sampling", "_integrate") in seen
        with pytest.raises(AssertionError, match="models.t2i:1 .models. imports thinkpix.sampling .mechanics."):
            test_every_import_points_down_the_layers()
        assert list(_private_imports().values()) == ["thinkpix.models.t2i:2 imports _integrate from thinkpix.sampling"]
    finally:
        PACKAGE = saved


# File names that modules of different packages may share because they do the same job for the same thing:
# each package's config dataclass; a part of the shapes world (worlds/shapes/) and its scorer (evaluation/); sampling
# any base into the shapes world's folders (the package's root) and the lake model into the lake's.
SHARED_NAMES = {
    "config.py": {"rsr", "training", "worlds/lake"},
    "dense.py": {"worlds/shapes", "evaluation"},
    "sampling.py": {".", "worlds/lake"},
}


def _name_clashes(package: Path) -> dict[str, list[str]]:
    """{file name: its packages} for names held by modules of more than one package, leaving out the per-world
    parallels (worlds/A/x.py beside worlds/B/x.py) and the SHARED_NAMES."""
    where: dict[str, list[str]] = {}
    for f in sorted(package.rglob("*.py")):
        if f.name != "__init__.py" and "__pycache__" not in f.parts:
            where.setdefault(f.name, []).append(f.parent.relative_to(package).as_posix())
    clashes = {}
    for name, packages in where.items():
        if len(packages) < 2 or set(packages) == SHARED_NAMES.get(name):
            continue
        if all(p.startswith("worlds/") and p.count("/") == 1 for p in packages):
            continue  # worlds/lake/render.py beside worlds/shapes/render.py
        clashes[name] = packages
    return clashes


def test_no_two_packages_hold_modules_of_one_name_for_different_jobs(tmp_path):
    assert not _name_clashes(PACKAGE), f"modules of one name in several packages: {_name_clashes(PACKAGE)}"
    for name, packages in SHARED_NAMES.items():  # every exception still describes the tree
        assert sorted(packages) == sorted(p.parent.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob(name)), name
    for rel in ("training/validation.py", "evaluation/validation.py", "worlds/lake/render.py",
                "worlds/shapes/render.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert _name_clashes(tmp_path) == {"validation.py": ["evaluation", "training"]}


def test_the_architecture_page_draws_the_layers_the_test_checks():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1].strip() for line in page.splitlines() if line.startswith("| ")][1:]
    assert rows == [name for name, _ in LAYERS]
