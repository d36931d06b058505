"""The speed numbers of docs/training.md and docs/lab/precision_parity.md are the committed benchmark results
verbatim: torch.compile (benchmarks/bench_compile.py), thread settings (benchmarks/bench_threads.py) and the
lake model's step (benchmarks/bench_lake_step.py)."""

import json
from pathlib import Path

import pytest

from thinkpix.analysis.speed_tables import compile_table, threads_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TRAINING = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["compile_demo.json", "compile_w256.json"])
def test_compile_tables_are_the_committed_results(name):
    result = json.loads((RESULTS / name).read_text())
    assert compile_table(result) in TRAINING
    assert result["command"] in TRAINING
    for entry in result["sizes"].values():  # the speed-ups are of the same process's eager rounds
        for p in ("fp32", "bf16"):
            e, c = entry["variants"][f"{p} eager"], entry["variants"][f"{p} compiled"]
            assert c["train_speedup_over_eager"] == pytest.approx(e["train_step_cpu_s"] / c["train_step_cpu_s"])
            assert entry["max_abs_diff"][p]["sample_latents"] > 0 or p == "fp32"  # bf16 compiled really ran compiled


def test_threads_table_is_the_committed_result():
    for name in ("threads.json", "threads_loaded.json"):  # the quiet machine's run and the loaded one
        result = json.loads((RESULTS / name).read_text())
        assert threads_table(result) in TRAINING, name
        assert result["command"] in TRAINING, name


def test_lake_step_numbers_are_the_committed_result():
    result = json.loads((RESULTS / "lake_step.json").read_text())
    fp32, bf16 = (result["settings"][p]["step_cpu_s"] * 1000 for p in ("fp32", "bf16"))
    parity = (ROOT / "docs" / "lab" / "precision_parity.md").read_text(encoding="utf-8")
    for doc in (parity, TRAINING):
        assert f"{fp32:.0f} ms (fp32) and {bf16:.0f} ms (bf16)" in " ".join(doc.split())
        assert result["command"] in " ".join(doc.split())
