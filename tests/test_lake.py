"""The lake world: map generation, exact shortest paths, rendering, the exact evaluator and its breaks."""

import json
from pathlib import Path

import numpy as np
import pytest

from thinkpix.cli import main
from thinkpix.errors import ThinkpixError
from thinkpix.worlds.lake.evaluation import evaluate_lake_folder, ground_truth_image, judge, path_cell_precision
from thinkpix.worlds.lake.breaks import BREAKS, break_solution
from thinkpix.worlds.lake import (FROZEN, HOLE, PATH, eval_set, from_text, random_map, read_cells, render,
                                  shortest_length, shortest_path, to_text, with_path)
from thinkpix.worlds.lake.maps import GOAL, START, find, neighbours
from thinkpix.worlds.lake.sets import eval_lengths, parse_range, training_pair

ROOT = Path(__file__).resolve().parents[1]


def brute_force_length(grid: np.ndarray) -> int:
    """Shortest start -> goal move count by enumerating every simple hole-free path (small grids only)."""
    n, goal, best = grid.shape[0], find(grid, GOAL), [-1]

    def walk(cell, seen):
        if cell == goal:
            best[0] = len(seen) - 1 if best[0] < 0 else min(best[0], len(seen) - 1)
            return
        for nb in neighbours(cell, n):
            if grid[nb] != HOLE and nb not in seen:
                walk(nb, seen | {nb})

    start = find(grid, START)
    walk(start, {start})
    return best[0]


def test_maps_are_solvable_with_the_asked_length_and_seeded():
    for size in range(2, 9):
        for length in range(1, 2 * size - 1):
            grid = random_map(np.random.default_rng([size, length]), size, length)
            assert grid.shape == (size, size)
            assert (grid == START).sum() == 1 and (grid == GOAL).sum() == 1
            assert shortest_length(grid) == length
    a, b = random_map(np.random.default_rng(7), 6, 5), random_map(np.random.default_rng(7), 6, 5)
    assert np.array_equal(a, b)
    others = [random_map(np.random.default_rng(s), 6, 5) for s in range(8, 12)]
    assert not all(np.array_equal(a, o) for o in others)


def test_shortest_length_matches_brute_force_on_small_grids():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(150):
        n = int(rng.integers(2, 5))
        grid = np.where(rng.random((n, n)) < 0.35, HOLE, FROZEN).astype(np.int8)
        free = np.argwhere(grid == FROZEN)
        if len(free) < 2:
            continue
        i, j = rng.choice(len(free), 2, replace=False)
        grid[tuple(free[i])], grid[tuple(free[j])] = START, GOAL
        assert shortest_length(grid) == brute_force_length(grid)
        checked += 1
    assert checked > 100
    walled = from_text(["S.H.", "..H.", "HHH.", "...G"])
    assert shortest_length(walled) == brute_force_length(walled) == -1


def test_shortest_paths_are_shortest_and_avoid_holes():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        grid = random_map(rng, 6, int(rng.integers(1, 12)))
        for path in (shortest_path(grid), shortest_path(grid, rng)):
            assert len(path) == shortest_length(grid) + 1
            assert path[0] == find(grid, START) and path[-1] == find(grid, GOAL)
            assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in zip(path, path[1:]))
            assert all(grid[c] != HOLE for c in path)


def test_text_form_round_trips_and_rejects_bad_maps():
    grid = from_text(["S.H.", "..H.", "....", "H..G"])
    assert to_text(grid) == ["S.H.", "..H.", "....", "H..G"]
    for rows in (["S.H", "..", "..G"], ["S..", "...", "..."], ["S.X", "...", "..G"]):
        with pytest.raises(ThinkpixError):
            from_text(rows)


def test_render_puts_each_cell_in_a_fixed_block_and_reads_back():
    for size in range(2, 9):
        grid = random_map(np.random.default_rng(size), size, size)
        solution = with_path(grid, shortest_path(grid))
        image = render(solution)
        assert image.shape == (32, 32, 3)
        assert np.array_equal(read_cells(image, size), solution)
        assert (image[4 * size:, :] == 0).all() and (image[:, 4 * size:] == 0).all()  # outside the map: black
        assert np.array_equal(read_cells(render(solution, 64), size), solution)


def image_of(rows: list[str]) -> np.ndarray:
    """A solution image from rows where '*' marks drawn path cells."""
    base = [r.replace("*", ".") for r in rows]
    solution = from_text(base)
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            if ch == "*":
                solution[r, c] = PATH
    return render(solution)


MAP = ["S..H", ".H..", "....", "H..G"]  # shortest path: 6 moves


@pytest.mark.parametrize("rows, verdict", [
    (["S**H", ".H**", "...*", "H..G"], "correct"),
    (["S..H", "*H..", "****", "H..G"], "correct"),  # another shortest path counts too
    (["S..H", "*H..", "**..", "H**G"], "correct"),
    (["S**H", "*H**", "****", "H..G"], "valid-not-shortest"),  # a detour: more cells than needed
    (["S**H", ".***", "...*", "H..G"], "touches-hole"),
    (["S**H", ".H*.", "...*", "H..G"], "broken"),  # gap
    (["S**H", ".H**", "...*", "*..G"], "touches-hole"),  # a stray cell on a hole
    (["S**H", ".H**", "*..*", "H..G"], "broken"),  # a stray cell on the ice
    (["S..H", ".H..", "....", "H..G"], "broken"),  # nothing drawn
])
def test_evaluator_verdicts_on_hand_made_cases(rows, verdict):
    assert judge(image_of(rows), from_text(MAP))["verdict"] == verdict


def test_path_cell_instrument_counts_cells_on_any_shortest_path_against_chance():
    grid = from_text(["S.G.", "....", "....", "...."])  # 2 moves: only (0, 1) lies on a shortest path
    right = judge(image_of(["S*G.", "....", "....", "...."]), grid)
    stray = judge(image_of(["S.G.", "..*.", "....", "...*"]), grid)
    assert (right["drawn"], right["on_path"], right["verdict"]) == (1, 1, "correct")
    assert (stray["drawn"], stray["on_path"], stray["verdict"]) == (2, 0, "broken")
    assert right["chance"] == stray["chance"] == 1 / 14  # 1 of the 14 free cells
    detour = judge(image_of(["S**H", "*H**", "****", "H..G"]), from_text(MAP))  # every free cell of MAP is on one
    assert (detour["drawn"], detour["on_path"], detour["chance"]) == (9, 9, 1.0)
    rows = [dict(r, length=2) for r in (right, stray)]
    assert path_cell_precision(rows) == {"images": 2, "drawn": 3, "precision": 1 / 3, "chance": 1 / 14,
                                         "drawn_per_needed": 1.5}
    assert "on_path" not in judge(image_of(["S.*H", ".H..", "....", "H..G"]), from_text(MAP), 2)  # position target


def test_evaluator_breaks_when_the_map_is_not_copied():
    grid = from_text(MAP)
    image = image_of(["S**H", ".H**", "...*", "H..G"])
    altered = image.copy()
    altered[8:12, 0:4] = render(from_text(["H..S", "....", "....", "...G"]))[0:4, 0:4]  # ice at (2,0) -> hole
    assert judge(altered, grid)["verdict"] == "broken"
    moved_goal = render(with_path(from_text(["S..H", ".H..", "...G", "H..."]), []))
    assert judge(moved_goal, grid)["verdict"] == "broken"


def test_ground_truth_is_correct_and_breaks_are_not():
    rng = np.random.default_rng(0)
    for size in (4, 6, 8):
        for length in (1, 2, size, 2 * size):
            grid = random_map(np.random.default_rng([size, length]), size, length)
            assert judge(ground_truth_image(grid), grid)["verdict"] == "correct"
            for kind in BREAKS:
                broken = break_solution(kind, grid, rng)
                if broken is not None:
                    assert judge(render(broken), grid)["verdict"] != "correct", (kind, to_text(grid))


def test_committed_set_covers_every_size_and_length_and_is_reproducible():
    lines = [json.loads(x) for x in (ROOT / "data/eval/lake.jsonl").read_text().splitlines()]
    assert lines == eval_set(8, 0)
    cells = {(m["size"], m["length"]) for m in lines}
    assert cells == {(n, L) for n in range(4, 9) for L in eval_lengths(n)}
    assert {m["split"] for m in lines} == {"in-range", "longer", "larger", "larger-longer"}


def test_training_pairs_stay_in_range():
    rng = np.random.default_rng(0)
    for _ in range(30):
        grid, solution, k = training_pair(rng, [4, 5], [1, 2, 3, 4, 5, 6])
        assert grid.shape[0] in (4, 5) and 1 <= shortest_length(grid) <= 6
        assert (solution == PATH).sum() == shortest_length(grid) - 1
    assert parse_range("4-6,8") == [4, 5, 6, 8]
    with pytest.raises(ThinkpixError):
        parse_range("four")


def test_cli_render_and_evaluate(tmp_path, capsys):
    maps = tmp_path / "maps.jsonl"
    assert main(["lake", "prompts", "--out", str(maps), "--per_cell", "1", "--sizes", "4-5"]) == 0
    assert main(["lake", "render", "--prompts", str(maps), "--out", str(tmp_path / "gt")]) == 0
    capsys.readouterr()
    assert main(["lake", "evaluate", str(tmp_path / "gt"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["overall"] == 1.0 and summary["images"] == 8 + 10
    assert set(summary["by_length"]) == {str(L) for L in range(1, 11)}
    assert set(summary["by_size"]) == {"4", "5"}
    # a wrong solution is scored as such
    sample = tmp_path / "gt" / "00003" / "samples" / "0000.png"
    from PIL import Image

    meta = json.loads((tmp_path / "gt" / "00003" / "metadata.jsonl").read_text())
    Image.fromarray(render(from_text(meta["map"]))).save(sample)  # no path drawn
    results, summary = evaluate_lake_folder(tmp_path / "gt")
    assert summary["images"] == 18 and summary["overall"] == pytest.approx(17 / 18)
    assert [r["verdict"] for r in results if r["folder"] == "00003"] == ["broken"]


def test_cli_refuses_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"tag": "lake", "map": ["S.H", "HHH", "..G"], "size": 3}) + "\n")
    assert main(["lake", "render", "--prompts", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "no path" in capsys.readouterr().err
    assert main(["lake", "evaluate", str(tmp_path / "nothing")]) == 2


def test_position_target_set_and_verdicts(tmp_path, capsys):
    metas = eval_set(1, 0, (4, 5), "position")
    assert {(m["size"], m["length"]) for m in metas} == {(n, L) for n in (4, 5) for L in range(2, 2 * n + 1)}
    assert all(m["target"] == "position" and 1 <= m["k"] < m["length"] for m in metas)
    for m in metas:
        grid = from_text(m["map"])
        assert judge(ground_truth_image(grid, k=m["k"]), grid, m["k"])["verdict"] == "correct"
    grid = from_text(MAP)  # shortest paths of 6 moves pass (0, 2) or (2, 0) after 2 moves
    assert judge(image_of(["S.*H", ".H..", "....", "H..G"]), grid, 2)["verdict"] == "correct"
    assert judge(image_of(["S..H", ".H..", "*...", "H..G"]), grid, 2)["verdict"] == "correct"  # another path
    assert judge(image_of(["S..H", ".H..", "*...", "H..G"]), grid, 3)["verdict"] == "wrong-position"
    assert judge(image_of(["S.*H", ".H..", "*...", "H..G"]), grid, 2)["verdict"] == "broken"  # two agents
    maps = tmp_path / "pos.jsonl"
    assert main(["lake", "prompts", "--target", "position", "--per_cell", "1", "--sizes", "4", "--out", str(maps)]) == 0
    assert main(["lake", "render", "--prompts", str(maps), "--out", str(tmp_path / "gt")]) == 0
    capsys.readouterr()
    assert main(["lake", "evaluate", str(tmp_path / "gt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"] == 1.0


def test_size_ranges_are_closed_and_ordered():
    from thinkpix.errors import ThinkpixError
    from thinkpix.worlds.lake.sets import parse_range

    assert parse_range("4-6,8") == [4, 5, 6, 8] and parse_range("5") == [5]
    for bad in ("8-4", "4-", "-4", "", "4-x"):
        with pytest.raises(ThinkpixError):
            parse_range(bad)
