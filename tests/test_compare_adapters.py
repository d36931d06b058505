"""`thinkpix.analysis.compare_adapters`: its statistics on hand-made per-prompt scores: paired differences, the
dense prompts kept out of the overall, seed pooling and the markdown table."""

import json
from pathlib import Path

import pytest

from thinkpix.analysis import compare_adapters as ca

ROOT = Path(__file__).resolve().parents[1]


def committed(path: str):
    """A committed results file or page of the repository: parsed JSON for `.json`, else the text."""
    text = (ROOT / path).read_text(encoding="utf-8")
    return json.loads(text) if path.endswith(".json") else text


def results(correct: dict[str, list[int]], dense: list[float]) -> list[dict]:
    """Result rows (one image per prompt) of two GenEval tasks and the dense task."""
    rows = [{"tag": t, "folder": f"{t}{i}", "correct": c} for t, cs in correct.items() for i, c in enumerate(cs)]
    return rows + [{"tag": "dense", "folder": f"d{i}", "correct": s == 1.0, "score": s} for i, s in enumerate(dense)]


def test_paired_differences_pooling_and_table():
    base = ca.per_prompt_scores(results({"counting": [0, 0, 1, 1], "position": [0, 1, 0, 1]}, [0.5, 0.5]))
    better = ca.per_prompt_scores(results({"counting": [1, 1, 1, 1], "position": [0, 1, 0, 1]}, [1.0, 0.5]))
    assert base["dense"] == {"d0": 0.5, "d1": 0.5}  # a dense image counts with its question score
    scores = {"base": base, "better": better, "same": base}
    out = ca.comparisons(scores, "better", ["base"])
    assert out["minus_base"]["difference"] == pytest.approx(0.25)  # counting +0.5, position 0: mean over tasks
    assert out["dense_minus_base"]["difference"] == pytest.approx(0.25)  # dense apart, not in the overall
    per_task = out["per_task_minus_base"]
    assert set(per_task) == {"counting", "position"}  # the GenEval tasks, each alone; dense apart
    assert per_task["counting"]["difference"] == pytest.approx(0.5) and per_task["position"]["difference"] == 0
    lo, hi = per_task["counting"]["ci95"]
    assert 0 <= lo < 0.5 < hi <= 1 and per_task["position"]["ci95"] == [0, 0]
    lo, hi = out["minus_base"]["ci95"]
    assert 0 <= lo < 0.25 < hi <= 0.5  # (4 prompts per task: resampling only the tied ones gives 0)
    same = ca.comparisons(scores, "same", ["base"])["minus_base"]
    assert same["difference"] == 0 and same["ci95"] == [0, 0]
    assert ca.comparisons(scores, "base", ["base"]) == {}  # an arm is not compared with itself
    pooled = ca.pooled([base, better])
    assert pooled["counting"] == {"counting0": 0.5, "counting1": 0.5, "counting2": 1.0, "counting3": 1.0}
    report = {"arms": {"base": {"tasks": {"counting": 0.5, "position": 0.5, "dense": 0.5}, "overall": 0.5,
                                "overall_ci95": [0.25, 0.75], "sampling": {"seconds_per_image": 0.2}},
                       "better": {"tasks": {"counting": 1.0, "position": 0.5, "dense": 0.75}, "overall": 0.75,
                                  "overall_ci95": [0.5, 1.0], "sampling": {"seconds_per_image": 0.3}, **out}}}
    table = ca.markdown(report).splitlines()
    assert len(table) == 4 and "- base" in table[0] and "dense - base" in table[0]
    assert "+0.250" in table[3] and "**0.750** (0.500-1.000)" in table[3]


def test_per_task_table_marks_the_tasks_whose_interval_excludes_zero():
    base = ca.per_prompt_scores(results({"counting": [0, 0, 0, 0, 0, 0], "position": [0, 1, 0, 1, 0, 1]}, []))
    deeper = ca.per_prompt_scores(results({"counting": [1, 1, 1, 1, 1, 1], "position": [1, 0, 0, 1, 0, 1]}, []))
    report = {"arms": {"d1": {}, "d6": ca.comparisons({"d1": base, "d6": deeper}, "d6", ["d1"])}}
    table = ca.per_task_markdown(report, "d1").splitlines()
    assert len(table) == 3 and table[2].startswith("| d6 - d1 |")  # the reference itself has no row
    cells = table[2].split(" | ")
    counting, position = cells[1 + ca.TASK_COLUMNS.index("counting")], cells[1 + ca.TASK_COLUMNS.index("position")]
    assert counting == "**+1.000 (+1.000 to +1.000)**"  # every prompt better: the interval excludes zero
    assert position.startswith("+0.000 (-") and not position.startswith("**")  # a swap: no reliable change


def test_seeds_table_puts_each_seeds_difference_side_by_side_and_refuses_a_missing_one():
    base = ca.per_prompt_scores(results({"counting": [0, 0, 0, 0, 0, 0], "position": [0, 1, 0, 1, 0, 1]}, []))
    deeper = ca.per_prompt_scores(results({"counting": [1, 1, 1, 1, 1, 1], "position": [1, 0, 0, 1, 0, 1]}, []))
    seed0 = {"arms": {"d1": {}, "d6": ca.comparisons({"d1": base, "d6": deeper}, "d6", ["d1"])}}
    seed1 = {"arms": {"d1": {}, "d6": ca.comparisons({"d1": base, "d6": base}, "d6", ["d1"])}}
    table = ca.seeds_markdown({"0": seed0, "1": seed1}, [("d6", "d1")], ("counting",)).splitlines()
    assert table[0] == "| difference | seed | counting | overall |"
    assert table[2].startswith("| d6 - d1 | 0 | **+1.000 (+1.000 to +1.000)** |")  # excludes zero: bold
    assert table[3] == "| d6 - d1 | 1 | +0.000 (+0.000 to +0.000) | +0.000 (+0.000 to +0.000) |"
    with pytest.raises(SystemExit, match="seed 0 has no paired difference d1 - d6"):
        ca.seeds_markdown({"0": seed0, "1": seed1}, [("d1", "d6")])


def test_the_depth_ladder_page_shows_the_committed_results_verbatim():
    """docs/lab/shapes_depth_ladder.md pastes `--table` and `--table --per-task d6|d1` of the committed report."""
    report = committed("experiments/results/shapes_depth_ladder.json")
    doc = committed("docs/lab/shapes_depth_ladder.md")
    for table in (ca.markdown(report), ca.per_task_markdown(report, "d6"), ca.per_task_markdown(report, "d1")):
        assert table in doc
    width = committed("experiments/results/shapes_depth_ladder_w256.json")
    assert ca.markdown(width) in doc and ca.per_task_markdown(width, "d6") in doc


def test_the_rsr_depth_page_shows_the_committed_results_verbatim():
    """docs/lab/shapes_rsr_depth.md pastes `--table` and `--table --per-task loop_T1|base|deep` of each seed's report, and `--seeds`."""
    doc = committed("docs/lab/shapes_rsr_depth.md")
    reports = {str(seed): committed(f"experiments/results/shapes_rsr_depth_s{seed}.json") for seed in (0, 1, 2)}
    for report in reports.values():
        for table in (ca.markdown(report), *(ca.per_task_markdown(report, ref) for ref in ("loop_T1", "base", "deep"))):
            assert table in doc
    differences = [("loop_T8", "loop_T1"), ("loop_T8", "base"), ("loop_T8", "deep"), ("deep", "base")]
    assert ca.seeds_markdown(reports, differences, ("single_object", "counting", "colors")) in doc
    adapters = {"0": reports["0"], **{str(seed): committed(f"experiments/results/shapes_rsr_depth_adapters_s{seed}.json")
                                      for seed in (1, 2)}}
    for seed in ("1", "2"):
        assert ca.markdown(adapters[seed]) in doc
    differences = [("adapter_T8", "base"), ("adapter_T8", "lora"), ("lora", "base")]
    assert ca.seeds_markdown(adapters, differences, ("single_object", "counting", "colors")) in doc


def test_the_precision_parity_page_shows_the_rsr_fine_tune_results_verbatim():
    """docs/lab/precision_parity.md pastes `--table` and `--table --per-task rsr_fp32` of the fine-tune report."""
    report = committed("experiments/results/precision_parity_finetune.json")
    doc = committed("docs/lab/precision_parity.md")
    assert ca.markdown(report) in doc and ca.per_task_markdown(report, "rsr_fp32") in doc
    bf16 = report["arms"]["rsr_bf16"]["minus_rsr_fp32"]
    assert f"{bf16['difference']:+.3f} ({bf16['ci95'][0]:+.3f} to {bf16['ci95'][1]:+.3f})" in doc  # the verdict's number
