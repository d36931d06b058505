"""What the web page computes, without a browser or gradio: the prompt reader, the lake board's clicks,
the pictures, and each tab's action on the bundled models and on tiny RSR / lake models."""

import json
from pathlib import Path

import numpy as np
import pytest

from thinkpix.errors import ThinkpixError
from thinkpix.web import class_tab, drawing, lake_board, lake_tab, routing_tab, text_tab
from thinkpix.web.typed_prompt import metadata_for
from thinkpix.web.service import BASE, load_service
from thinkpix.worlds.lake import GOAL, HOLE, LAKE_COLORS, START

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "a photo of a red circle and a blue square"


def test_every_evaluation_prompt_reads_back_to_its_own_metadata():
    lines = [json.loads(x) for x in (ROOT / "data" / "eval" / "geneval.jsonl").read_text().splitlines()]
    assert {m["tag"] for m in lines} == {"single_object", "two_object", "counting", "colors", "position", "color_attr"}
    assert all(metadata_for(m["prompt"]) == m for m in lines)
    assert metadata_for("  A Photo of  a red circle ")["include"] == [{"class": "circle", "count": 1, "color": "red"}]
    for other in ("a cat", "a photo of a circle and a circle", "a photo of a red circle left of a square",
                  "a photo of seven circles", "a photo of a red circle and a square", "a photo of a hexagon"):
        assert metadata_for(other) is None, other


def test_board_clicks_toggle_one_cell_and_move_start_and_goal():
    text = "S.H.,..H.,....,H..G"
    cell = lake_board.BOARD_CELL
    at = lambda r, c: (c * cell + cell // 2, r * cell + cell // 2)  # noqa: E731 - pixel of a cell's centre
    toggled = lake_board.click(text, *at(0, 2), "ice / hole")
    assert toggled == "S...,..H.,....,H..G"
    assert lake_board.click(toggled, *at(0, 2), "ice / hole") == text
    moved = lake_board.click(text, *at(2, 2), "start")
    assert moved == "..H.,..H.,..S.,H..G"
    assert lake_board.click(text, *at(0, 1), "goal") == "SGH.,..H.,....,H..."
    for bad in ((*at(0, 0), "ice / hole"), (*at(3, 3), "start"), (5 * cell, 0, "goal"), (*at(1, 1), "paint")):
        with pytest.raises(ThinkpixError):
            lake_board.click(text, *bad)
    picture = lake_board.board(lake_board.parse(text))
    assert picture.shape == (4 * cell, 4 * cell, 3)
    for (r, c), kind in (((0, 2), HOLE), ((3, 3), GOAL), ((1, 0), 1)):
        assert tuple(picture[r * cell + 3, c * cell + 3]) == LAKE_COLORS[kind]
    assert lake_board.parse("S.\n.G") is not None and (lake_board.parse(text) == START).sum() == 1
    with pytest.raises(ThinkpixError, match="empty"):
        lake_board.parse(" , ")
    with pytest.raises(ThinkpixError, match="no path"):
        lake_tab.solvable("SH..,H...,....,...G")


def test_routing_map_tints_each_token_with_its_expert():
    image = np.full((32, 32, 3), 100, dtype=np.uint8)
    experts = np.zeros(64, dtype=np.int64)
    experts[9] = 1  # token (1, 1) of the 8 x 8 grid
    out = drawing.routing_map(experts, image, scale=2, alpha=1.0)  # (64, 64, 3), 8 px per token
    assert out.shape == (64, 64, 3)
    assert tuple(out[8 + 4, 8 + 4]) == tuple(drawing.EXPERT_COLOURS[1].astype(np.uint8))
    assert tuple(out[0, 0]) == tuple(drawing.EXPERT_COLOURS[0].astype(np.uint8))
    with pytest.raises(ValueError):
        drawing.routing_map(np.zeros(10, dtype=np.int64), image)


@pytest.fixture(scope="module")
def service(one_thread, tiny):
    return load_service(adapters=[str(tiny["adapter"])], lake_model=str(tiny["lake"]))


def test_text_to_image_verdicts_are_the_evaluators_and_t0_is_the_base(service):
    from thinkpix.evaluation.runner import score_image
    from thinkpix.sampling import generate_images

    gallery, report = text_tab.text_to_image(service, PROMPT, 3, 4, 3.0, BASE, 0, 2)
    assert len(gallery) == 2 and gallery[0][0].shape == (256, 256, 3)
    direct = generate_images(service.variants[BASE].model, [PROMPT] * 2, seed=3, steps=4, guidance=3.0).numpy()
    meta = metadata_for(PROMPT)
    for i, image in enumerate(direct):
        verdict = "correct" if score_image(image, meta)["correct"] else "wrong"
        assert gallery[i][1] == f"base, seed {3 + i}: {verdict}"
    name = next(n for n, v in service.variants.items() if v.rsr)
    both, _ = text_tab.text_to_image(service, PROMPT, 3, 4, 3.0, name, 3, 2)
    assert [c.split(",")[0] for _, c in both] == ["T=0 (base)"] * 2 + ["T=3"] * 2
    assert np.array_equal(both[0][0], gallery[0][0])  # T = 0 of an RSR adapter is the base, exactly
    strip, text = text_tab.strip(service, PROMPT, 3, 4, 3.0, name)
    assert len(strip) == 9 and "T=8" in text and not np.array_equal(strip[0][0], strip[8][0])
    assert text_tab.strip(service, PROMPT, 3, 4, 3.0, BASE)[0] == []  # no RSR: a message, no strip


def test_routing_shows_every_layer_and_latent_step_at_five_diffusion_steps(service):
    name = next(n for n, v in service.variants.items() if v.rsr)
    picture, text = routing_tab.routing(service, PROMPT, 0, 6, 3.0, name, 2)
    assert routing_tab.shown_steps(6) == [0, 1, 2, 4, 5] and routing_tab.shown_steps(20) == [0, 5, 10, 14, 19]
    tile = 32 * routing_tab.SCALE
    assert picture.shape[0] >= 5 * tile and picture.shape[1] >= 2 * 2 * tile  # 5 rows, 2 layers x 2 steps
    shares = [[float(x) for x in part.split(": ")[1].split("/")] for part in text.split("rows shown): ")[1].split("; ")]
    assert len(shares) == 2 and all(abs(sum(s) - 1) < 0.02 and len(s) == 3 for s in shares)


def test_lake_solve_reports_the_evaluators_exact_verdict_per_latent_step(service):
    from thinkpix.worlds.lake.evaluation import judge
    from thinkpix.integrations.attach import set_latent_steps
    from thinkpix.worlds.lake.sampling import generate_lake_images

    text = "S...,.H..,....,H..G"
    picture, report, per_step = lake_tab.solve(service, text, 2, 1, 3)
    grid = lake_board.parse(text)
    for t in range(3):
        set_latent_steps(service.lake.transformer, t)
        v = judge(generate_lake_images(service.lake, [grid], seed=1, steps=3)[0].numpy(), grid)
        assert per_step[t][1] == f"T={t}: {v['verdict']}"
        if t == 2:
            assert f"Verdict: {v['verdict']}** ({v['reason']})" in report
    assert picture.shape[1] > 3 * 4 * 4 * lake_tab.ZOOM  # map, route and a shortest path side by side


@pytest.mark.parametrize("call, words", [
    (lambda s: text_tab.text_to_image(s, "  ", 0, 2, 3.0, BASE, 0, 1), "prompt must not be empty"),
    (lambda s: text_tab.text_to_image(s, PROMPT, 0, 2, 3.0, BASE, 2, 1), "need an RSR adapter"),
    (lambda s: text_tab.text_to_image(s, PROMPT, 0.5, 2, 3.0, BASE, 0, 1), "seed must be an integer"),
    (lambda s: text_tab.text_to_image(s, PROMPT, 0, 0, 3.0, BASE, 0, 1), "sampler steps"),
    (lambda s: text_tab.text_to_image(s, PROMPT, 0, 2, 3.0, "nope", 0, 1), "unknown model"),
    (lambda s: routing_tab.routing(s, PROMPT, 0, 2, 3.0, BASE, 2), "no RSR routing"),
    (lambda s: class_tab.class_images(s, "pink hexagon", 0, 2, 3.0, 0, 1), "unknown class"),
    (lambda s: class_tab.class_images(s, "red circle", 0, 2, 3.0, 2, 1), "--class_adapter"),
    (lambda s: lake_tab.solve(s, "SH..,H...,....,...G", 0, 0, 2), "no path"),
    (lambda s: lake_tab.solve(s, "S..X,....,....,...G", 0, 0, 2), "unknown map character"),
])
def test_bad_inputs_are_one_line_messages(service, call, words):
    with pytest.raises(ThinkpixError, match=words) as info:
        call(service)
    assert "\n" not in str(info.value)


def test_without_a_lake_model_the_lake_tab_says_how_to_get_one(one_thread):
    plain = load_service()
    assert plain.lake is None and plain.dit is not None
    with pytest.raises(ThinkpixError, match="--lake_model"):
        lake_tab.solve(plain, "S...,....,....,...G", 0, 0, 2)
