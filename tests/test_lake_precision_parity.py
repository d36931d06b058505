"""The lake precision-parity comparison: accuracies and per-map paired differences to the first arm, read
from finished runs' scores (synthetic scores with known answers)."""

import json

import pytest

from thinkpix.analysis.lake_precision_parity import compare, table


def _run(folder, solved, precision=None, seed=0):
    """A finished stack run: in-range maps of lengths 1..6 (100 each), `solved` per map at every T."""
    folder.mkdir(parents=True)
    lengths = [1 + i % 6 for i in range(len(solved))]
    rows = {str(T): solved for T in (1, 2, 4, 8, 16)}
    (folder / "scores.json").write_text(json.dumps({"in-range": {"lengths": lengths, "sizes": [5] * len(solved),
                                                                 "T": rows}}))
    train = {"seed": seed, "budget": {"steps": 40}, "seconds": 12.5, **({"precision": precision} if precision else {})}
    (folder / "train.json").write_text(json.dumps(train))
    return folder


def test_paired_differences_to_the_reference(tmp_path):
    n = 600
    ref = [1] * (n // 2) + [0] * (n // 2)
    bf16 = list(ref)
    for i in range(0, 60):  # 60 maps the reference solved are lost
        bf16[i] = 0
    result = compare({"fp32": _run(tmp_path / "a", ref), "bf16": _run(tmp_path / "b", bf16, "bf16"),
                      "fp32_seed1": _run(tmp_path / "c", ref, seed=1)})
    a, b, c = (result["arms"][k] for k in ("fp32", "bf16", "fp32_seed1"))
    assert (a["precision"], b["precision"], c["seed"]) == ("fp32", "bf16", 1)
    assert a["in_range"] == 0.5 and b["in_range"] == pytest.approx(0.4)
    assert b["vs_reference_in_range"]["gain"] == pytest.approx(-0.1)
    assert b["vs_reference_in_range"]["hi"] < 0 < c["vs_reference_in_range"]["hi"] + 1e-9
    assert c["vs_reference_in_range"]["gain"] == 0 and c["vs_reference_in_range"]["lo"] == 0
    deciding = [i for i in range(n) if 4 <= 1 + i % 6 <= 6]
    assert b["vs_reference_deciding"]["maps"] == len(deciding)
    expected = sum(bf16[i] - ref[i] for i in deciding) / len(deciding)
    assert b["vs_reference_deciding"]["gain"] == pytest.approx(expected, abs=1e-4)
    text = table(result)
    assert "| bf16 | bf16 | 0 | 40 | 0.400 | -0.100 (" in text and "| fp32 | fp32 | 0 | 40 | 0.500 | - |" in text


def test_runs_on_different_maps_are_refused(tmp_path):
    a = _run(tmp_path / "a", [1, 0] * 300)
    b = _run(tmp_path / "b", [1, 0] * 301)
    with pytest.raises(ValueError, match="different maps"):
        compare({"fp32": a, "bf16": b})


def test_the_parity_page_shows_the_committed_lake_result_verbatim():
    """docs/lab/precision_parity.md's lake table is `table` of the committed results file."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = json.loads((root / "experiments/results/precision_parity_lake.json").read_text())
    assert table(result) in (root / "docs/lab/precision_parity.md").read_text(encoding="utf-8")
