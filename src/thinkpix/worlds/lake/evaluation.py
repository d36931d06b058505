"""The exact lake evaluator: read the cells of a generated solution back and judge the drawn path.

Verdicts (one per image, checked in this order):
1. `broken`: the start or goal is not where the map has it;
2. `touches-hole`: a drawn (path-coloured) cell lies on a hole;
3. `broken`: another cell differs from the map (the map was not copied), no 4-connected route of
   drawn cells joins start and goal (a gap), or drawn cells lie off that route (stray cells);
4. `correct`: exactly L - 1 drawn cells, L the shortest path length: with the route above they are
   then one shortest path (any shortest path counts);
5. `valid-not-shortest`: a connected hole-free route, but more drawn cells than a shortest path needs.

Graded instrument (path target): `on_path`, the drawn cells that lie on some shortest path, and `chance`,
the share of the map's free cells (not a hole, start or goal) that do. Summed over images they give the
path-cell precision and what drawing the same number of cells uniformly at random would get (summary
`path_cells`): a model that has learned something about paths but never a whole one shows there.

Position target (metadata `k`): `correct` when exactly one cell is drawn and an agent can stand there
after k moves along some shortest path; `wrong-position` when exactly one other cell is drawn;
`broken` when the map is not copied or not exactly one cell is drawn (`touches-hole` as above).

Folder layout and summary as the GenEval-style evaluator (`runner.py`): DIR/00000/metadata.jsonl (a
lake metadata line), DIR/00000/samples/0000.png; writes DIR/results.jsonl and DIR/summary.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import located
from ...evaluation.bootstrap import bootstrap_mean_interval
from ...evaluation.metadata import read_jsonl
from ...evaluation.runner import load_image, prompt_folders, sample_paths
from ...imaging import save_png
from .maps import (GOAL, HOLE, PATH, START, distances, find, positions_after, shortest_length,
                                shortest_path, with_path)
from .render import read_cells, render
from .sets import SPLITS, TAG, map_of

VERDICTS = ("correct", "valid-not-shortest", "wrong-position", "touches-hole", "broken")


def judge(image: np.ndarray, grid: np.ndarray, k: int | None = None) -> dict:
    """(H, H, 3) uint8 solution for the (N, N) map `grid` (with `k`: the position target after k
    moves) -> {'verdict', 'reason', 'drawn'}."""
    n = grid.shape[0]
    cells = read_cells(image, n)  # (N, N) kinds
    drawn = cells == PATH
    start, goal = find(grid, START), find(grid, GOAL)
    out = {"drawn": int(drawn.sum())}
    if k is None:
        out |= _path_cells(drawn, grid, start, goal)
    if cells[start] != START or cells[goal] != GOAL:
        return out | {"verdict": "broken", "reason": "start or goal not where the map has it"}
    holes = np.argwhere(drawn & (grid == HOLE))
    if len(holes):
        return out | {"verdict": "touches-hole", "reason": f"path on hole {tuple(int(x) for x in holes[0])}"}
    altered = np.argwhere(~drawn & (cells != grid))
    if len(altered):
        return out | {"verdict": "broken", "reason": f"map altered at {tuple(int(x) for x in altered[0])}"}
    if k is not None:
        return out | _judge_position(drawn, grid, k)
    walk = drawn.copy()
    walk[start] = walk[goal] = True
    dist = distances(grid, start, allowed=walk)  # moves over drawn cells only
    if dist[goal] < 0:
        return out | {"verdict": "broken", "reason": "gap: no drawn route from start to goal"}
    if (drawn & (dist < 0)).any():
        return out | {"verdict": "broken", "reason": "stray drawn cells off the route"}
    length = shortest_length(grid)
    if out["drawn"] == length - 1:
        return out | {"verdict": "correct", "reason": f"shortest path, {length} moves"}
    return out | {"verdict": "valid-not-shortest",
                  "reason": f"{out['drawn']} cells drawn, a shortest path ({length} moves) needs {length - 1}"}


def _path_cells(drawn: np.ndarray, grid: np.ndarray, start, goal) -> dict:
    """{'on_path': drawn cells on some shortest path, 'chance': share of free cells that are}."""
    from_start, from_goal = distances(grid, start), distances(grid, goal)  # (N, N), -1 unreachable
    free = (grid != HOLE) & (grid != START) & (grid != GOAL)
    on = free & (from_start >= 0) & (from_goal >= 0) & (from_start + from_goal == from_start[goal])
    return {"on_path": int((drawn & on).sum()), "chance": float(on.sum() / max(int(free.sum()), 1))}


def _judge_position(drawn: np.ndarray, grid: np.ndarray, k: int) -> dict:
    if drawn.sum() != 1:
        return {"verdict": "broken", "reason": f"{int(drawn.sum())} cells drawn, the agent is one"}
    cell = tuple(int(x) for x in np.argwhere(drawn)[0])
    if positions_after(grid, k)[cell]:
        return {"verdict": "correct", "reason": f"agent at {cell} after {k} moves"}
    return {"verdict": "wrong-position", "reason": f"agent at {cell}, not {k} moves along a shortest path"}


def ground_truth_image(grid: np.ndarray, canvas: int = 32, k: int | None = None) -> np.ndarray:
    """The map with its canonical shortest path drawn (with `k`: only the agent's cell after k moves
    along it): (canvas, canvas, 3) uint8."""
    path = shortest_path(grid)
    return render(with_path(grid, path if k is None else [path[0], path[k], path[-1]]), canvas)


def write_ground_truth(metas: list[dict], out: Path, canvas: int = 32) -> Path:
    """Ground-truth solutions in the folder layout (one image per map)."""
    out = Path(out)
    for i, meta in enumerate(metas):
        folder = out / f"{i:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        (folder / "metadata.jsonl").write_text(json.dumps(meta) + "\n", encoding="utf-8")
        save_png(ground_truth_image(map_of(meta), canvas, meta.get("k")), folder / "samples" / "0000.png")
    return out


def evaluate_lake_folder(root: Path, write: bool = True) -> tuple[list[dict], dict]:
    """Judge every image under `root` -> (results, summary); writes results.jsonl and summary.json."""
    root = Path(root)
    jobs = []
    for folder in prompt_folders(root):
        path = folder / "metadata.jsonl"
        lines = read_jsonl(path)
        if len(lines) != 1 or lines[0][1].get("tag") != TAG:
            raise located(path, None, "expected one lake metadata line (tag 'lake')")
        meta = lines[0][1]
        jobs.append((folder, meta, map_of(meta), sample_paths(folder)))
    results, canvas = [], None
    for folder, meta, grid, samples in jobs:
        for path in samples:
            image = load_image(path, canvas)
            canvas = canvas or image.shape[0]
            row = {"folder": folder.name, "sample": path.name, "size": meta["size"], "length": meta["length"],
                   "split": meta.get("split", ""), "prompt": meta["prompt"]}
            verdict = judge(image, grid, meta.get("k"))
            results.append(row | verdict | {"correct": verdict["verdict"] == "correct"})
    summary = summarise_lake(results)
    if write:
        with (root / "results.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in results)
        (root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return results, summary


def _accuracy(rows: list[dict]) -> dict:
    correct = [float(r["correct"]) for r in rows]
    lo, hi = bootstrap_mean_interval(correct)
    return {"images": len(rows), "accuracy": float(np.mean(correct)), "ci95": [lo, hi]}


def _grouped(results: list[dict], key: str) -> dict:
    groups: dict = {}
    for r in results:
        groups.setdefault(r[key], []).append(r)
    order = sorted(groups, key=lambda k: (SPLITS.index(k) if k in SPLITS else len(SPLITS), k))
    return {str(k): _accuracy(groups[k]) for k in order}


def summarise_lake(results: list[dict]) -> dict:
    """Overall accuracy (95% bootstrap interval over images), verdict shares, and accuracy per path
    length, grid size and split."""
    overall = _accuracy(results)
    summary = {
        "overall": overall["accuracy"],
        "overall_ci95": overall["ci95"],
        "images": len(results),
        "prompts": len({r["folder"] for r in results}),
        "verdicts": {v: float(np.mean([r["verdict"] == v for r in results])) for v in VERDICTS},
        "by_length": _grouped(results, "length"),
        "by_size": _grouped(results, "size"),
        "by_split": _grouped(results, "split"),
    }
    summary["path_cells"] = {"overall": path_cell_precision(results), **{
        f"by_{key}": {k: path_cell_precision([r for r in results if str(r[key]) == k]) for k in summary[f"by_{key}"]}
        for key in ("split", "length")}}  # the same groups as the accuracies
    return summary


def path_cell_precision(results: list[dict]) -> dict | None:
    """Over the path-target images: drawn cells, the share on some shortest path (precision), the share
    the same cells drawn uniformly at random on each map's free cells would get (chance), and drawn
    cells per cell a shortest path needs. None without path-target images."""
    rows = [r for r in results if "on_path" in r]
    if not rows:
        return None
    drawn = sum(r["drawn"] for r in rows)
    needed = sum(max(r["length"] - 1, 0) for r in rows)
    return {"images": len(rows), "drawn": drawn,
            "precision": sum(r["on_path"] for r in rows) / drawn if drawn else None,
            "chance": sum(r["drawn"] * r["chance"] for r in rows) / drawn if drawn else None,
            "drawn_per_needed": drawn / needed if needed else None}


def format_lake_table(summary: dict) -> str:
    lines = []
    for title, key in (("length", "by_length"), ("size", "by_size"), ("split", "by_split")):
        lines.append(f"{title:<15}{'images':>8}{'accuracy':>10}   95% CI")
        for name, g in summary[key].items():
            lines.append(f"{name:<15}{g['images']:>8}{g['accuracy']:>10.3f}   {g['ci95'][0]:.3f}-{g['ci95'][1]:.3f}")
        lines.append("")
    lo, hi = summary["overall_ci95"]
    lines.append(f"{'overall':<15}{summary['images']:>8}{summary['overall']:>10.3f}   {lo:.3f}-{hi:.3f}")
    lines.append("verdicts: " + ", ".join(f"{v} {s:.3f}" for v, s in summary["verdicts"].items()))
    cells = summary["path_cells"]["overall"]
    if cells and cells["drawn"]:
        lines.append(f"path cells: {cells['drawn']} drawn ({cells['drawn_per_needed']:.2f} per cell a shortest path "
                     f"needs), {cells['precision']:.3f} on a shortest path (chance {cells['chance']:.3f})")
    return "\n".join(lines)
