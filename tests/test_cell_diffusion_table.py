"""Lake diffusion's table: paired differences between arms and the pre-registered verdicts."""

import json

import numpy as np
import pytest

from thinkpix.worlds.lake import cell_diffusion_table as table

LENGTHS = [1, 2, 3, 4, 5, 6] * 50  # 300 maps, 150 of them with 4-6 moves


def scores(rng, p_by_T: dict[int, float], looped: bool) -> dict:
    """Per-map 0/1 rows drawn with the given success rates (the same maps for every split)."""
    steps = (0, 1, 2, 4, 8, 16) if looped else (1, 2, 4, 8, 16)
    rows = {str(T): (rng.random(len(LENGTHS)) < p_by_T.get(T, p_by_T[1])).astype(int).tolist() for T in steps}
    split = {"lengths": LENGTHS, "sizes": [4] * len(LENGTHS), "T": rows}
    return {"in-range": split, "larger": split, "longer": split}


def write(runs, arm, seed, data):
    folder = runs / f"diffusion-{arm}" / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "scores.json").write_text(json.dumps(data))


ROLES = {"base": "stack-2", "winner": "rsr-x-b2", "paper": "rsr-p-b2", "deep": "stack-5"}


def test_verdicts_follow_the_rows(tmp_path):
    rng = np.random.default_rng(0)
    for s in range(3):
        write(tmp_path, "stack-2", s, scores(rng, {1: 0.6}, False))
        write(tmp_path, "stack-5", s, scores(rng, {1: 0.95}, False))
        write(tmp_path, "rsr-x-b2", s, scores(rng, {0: 0.1, 1: 0.5, 8: 0.9}, True))  # a loop that computes
        write(tmp_path, "rsr-p-b2", s, scores(rng, {1: 0.55}, True))  # flat in T
    result = table.tabulate(tmp_path, ROLES)
    v = result["verdicts"]
    assert v["base_rule"] == "cleared" and v["winner_loop"] == "computes"
    assert v["winner_vs_base"] == "beats the base" and v["deep_vs_base"] == "depth helps"
    assert v["paper_loop"] in ("inert", "weak") and v["winner_vs_deep"] != "beats compute-matched depth"
    d = result["per_seed"]["0"]["winner_minus_base"]
    assert d["lo"] <= d["gain"] <= d["hi"] and d["maps"] == 150
    text = table.fill_doc("a\n<!-- diffusion-accuracy -->\n<!-- diffusion-comparisons -->\nb", result)
    assert "| winner | `rsr-x-b2` | 3 |" in text and "beats the base" in text and text.endswith("b")
    assert table.fill_doc(text, result) == text  # rewriting is idempotent


def test_missing_arm_and_unpaired_maps_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    write(tmp_path, "stack-2", 0, scores(rng, {1: 0.5}, False))
    with pytest.raises(FileNotFoundError, match="rsr-x-b2"):
        table.tabulate(tmp_path, ROLES)
    other = scores(rng, {1: 0.5}, True)
    other["in-range"] = {**other["in-range"], "lengths": LENGTHS[::-1]}
    with pytest.raises(ValueError, match="different maps"):
        table.versus(scores(rng, {1: 0.5}, True), other)


def test_finetune_table_pairs_adapters_with_lora_on_the_shifted_maps(tmp_path):
    from thinkpix.worlds.lake import cell_finetune_table as ft_table

    rng = np.random.default_rng(2)
    base_runs, runs = tmp_path / "base", tmp_path / "ft"
    for s in range(3):
        write(base_runs, "stack-2", s, scores(rng, {1: 0.3}, False))
        for arm, p, looped in (("adapter-refined-every-step", {1: 0.4, 8: 0.8}, True),
                               ("adapter-paper", {1: 0.3}, True), ("lora", {1: 0.5}, False),
                               ("lora-2x", {1: 0.55}, False)):
            folder = runs / f"finetune-{arm}" / f"seed{s}"
            folder.mkdir(parents=True)
            (folder / "scores.json").write_text(json.dumps(scores(rng, p, looped)))
    result = ft_table.tabulate(base_runs, runs, "stack-2")
    v = result["verdicts"]
    assert v["adapter-refined-every-step loop"] == "computes"
    assert v["adapter-refined-every-step vs lora"] == "beats lora"
    assert v["adapter-paper vs lora-2x"] == "worse than lora-2x" and v["lora vs base"] == "helps"
    assert result["per_seed"]["1"]["lora_minus_base"]["maps"] == 150
    text = ft_table.fill_doc("<!-- finetune-table -->\nold\n<!-- /finetune-table -->\nend", result)
    assert "old" not in text and "**beats lora**" in text and text.endswith("end")


def test_t_curves_figure_from_a_table(tmp_path):
    from thinkpix.worlds.lake.cell_diffusion_figure import main

    rng = np.random.default_rng(3)
    for s in range(2):
        write(tmp_path, "stack-2", s, scores(rng, {1: 0.6}, False))
        write(tmp_path, "stack-5", s, scores(rng, {1: 0.9}, False))
        write(tmp_path, "rsr-x-b2", s, scores(rng, {1: 0.5, 8: 0.7}, True))
        write(tmp_path, "rsr-p-b2", s, scores(rng, {1: 0.5}, True))
    results = tmp_path / "r.json"
    results.write_text(json.dumps(table.tabulate(tmp_path, ROLES)))
    assert main(["--curves", str(results), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x.png")])  # neither figure's inputs given


def test_the_docs_tables_are_the_committed_results_verbatim():
    """docs/lab/lake_diffusion.md shows the tables `cell_diffusion_table` makes of the committed results."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = json.loads((root / "experiments/results/lake_diffusion.json").read_text())
    doc = (root / "docs/lab/lake_diffusion.md").read_text()
    assert table.markdown_accuracy(result) in doc and table.markdown_comparisons(result) in doc
    assert all(not p.startswith("/") and "~" not in p for p in result["runs"])
    assert result["verdicts"]["winner_loop"] in doc and result["verdicts"]["winner_vs_deep"] in doc


def test_the_finetune_page_shows_the_committed_results_verbatim():
    from pathlib import Path

    from thinkpix.worlds.lake import cell_finetune_table as ft_table

    root = Path(__file__).resolve().parents[1]
    result = json.loads((root / "experiments/results/lake_finetune.json").read_text())
    assert ft_table.markdown(result) in (root / "docs/lab/lake_finetune.md").read_text()
    assert all(not p.startswith("/") and "~" not in p for p in result["runs"])
