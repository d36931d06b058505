"""The package works without the source tree: a wheel built from the checkout (`pip wheel .`) installs
into a fresh virtual environment and `thinkpix demo` runs there from a folder outside the tree, with the
bundled model, the evaluation set and the configs read from the installed package.

The fresh environment reuses this environment's dependencies (torch, diffusers, ...) through a `.pth`
line, so nothing is downloaded; the editable install of this checkout is not among them (its `.pth`
hook lives in this environment's site-packages, and `.pth` files of a directory added that way are not run).
It builds a 20 MB wheel and samples with the bundled model, so it runs only when asked:
`THINKPIX_WHEEL_TEST=1 python -m pytest tests/test_wheel.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("THINKPIX_WHEEL_TEST") != "1", reason="set THINKPIX_WHEEL_TEST=1 to build a wheel")
def test_a_wheel_installs_and_runs_the_demo_outside_the_tree(tmp_path):
    # built from the tracked files alone, as from a fresh clone: setuptools builds in the tree's build/, and a
    # build/ left by an earlier build would put modules the tree no longer has into the wheel
    tree = tmp_path / "tree"
    tracked = subprocess.check_output(["git", "ls-files", "-z"], cwd=ROOT, text=True).split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), "-q"], check=True, cwd=tmp_path, timeout=600)
    (wheel,) = wheels.glob("thinkpix-*.whl")
    with zipfile.ZipFile(wheel) as zf:  # exactly the package's modules, each once
        shipped = sorted(n for n in zf.namelist() if n.endswith(".py"))
    source = sorted(n[len("src/"):] for n in tracked if n.startswith("src/thinkpix/") and n.endswith(".py"))
    assert shipped == source, sorted(set(shipped) ^ set(source))

    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    (purelib,) = {Path(p) for p in json.loads(subprocess.check_output(
        [python, "-c", "import json, sysconfig; print(json.dumps([sysconfig.get_paths()['purelib']]))"]))}
    (purelib / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, timeout=300)

    elsewhere = tmp_path / "elsewhere"  # not the checkout: nothing of the tree is reachable from here
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.check_output([python, "-c", "import thinkpix; print(thinkpix.__file__)"], cwd=elsewhere,
                                    env=env, text=True).strip()
    assert Path(where).is_relative_to(env_dir) and not Path(where).is_relative_to(ROOT), where
    done = subprocess.run([env_dir / "bin" / "thinkpix", "demo", "--out", "demo", "--per_task", "1",
                           "--images_per_prompt", "1"], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=1800)  # a busy 2-core machine
    assert done.returncode == 0, done.stderr[-2000:]
    assert "overall" in done.stdout.lower(), done.stdout[-2000:]
    assert len(list((elsewhere / "demo").rglob("*.png"))) >= 6  # one image per task, and the contact sheet
