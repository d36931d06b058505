"""The Gradio page (`thinkpix serve`): four tabs over a loaded `Service`. Every event that samples shares
one queue slot (concurrency 1, `concurrency_id="sampler"`), so two visitors never run two samplers at
once; a bad input ends in a one-line message in the page (`ThinkpixError`), never a traceback."""

from __future__ import annotations

import functools
import logging
import os
import traceback

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry, no version check

import gradio as gr  # noqa: E402

from ..errors import ThinkpixError  # noqa: E402
from . import class_tab, lake_board, lake_tab, routing_tab, text_tab  # noqa: E402
from .inputs import MAX_IMAGES, MAX_STEPS, MAX_THINK  # noqa: E402
from .service import BASE, Service  # noqa: E402

DEFAULT_PROMPT = "a photo of a red circle and a blue square"
DEFAULT_MAP = "S.H..,..H..,.....,H.HH.,....G"
SAMPLER = dict(concurrency_limit=1, concurrency_id="sampler")
log = logging.getLogger("thinkpix.web")


def message(text: str) -> str:
    return f"**Error:** {' '.join(str(text).split())}"


def guarded(fn, outputs: int, note: int = -1):
    """fn(*inputs) -> outputs; a ThinkpixError (bad input) becomes its message in output `note` (a
    Markdown), any other exception a one-line message there (its traceback goes to the server's log);
    the other outputs are left as they were."""
    note = note % outputs

    def failed(text: str) -> tuple:
        return tuple(message(text) if i == note else gr.update() for i in range(outputs))

    @functools.wraps(fn)
    def run(*args):
        try:
            result = fn(*args)
            return result if isinstance(result, tuple) else (result,)
        except ThinkpixError as exc:
            return failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - the page shows a line, the log keeps the traceback
            log.error("request failed:\n%s", traceback.format_exc())
            return failed(f"internal error ({type(exc).__name__}: {exc})")

    return run


def _sampler_inputs():
    seed = gr.Number(value=0, label="seed", precision=0, minimum=0)
    steps = gr.Slider(1, MAX_STEPS, value=20, step=1, label="sampler steps")
    guidance = gr.Slider(0.0, 10.0, value=3.0, step=0.5, label="guidance")
    return seed, steps, guidance


def _text_tab(service: Service, rsr: list[str]):
    default = rsr[0] if rsr else BASE
    with gr.Row():
        prompt = gr.Textbox(DEFAULT_PROMPT, label="prompt", scale=3, elem_id="t2i-prompt")
        model = gr.Dropdown(list(service.variants), value=default, label="model / adapter", scale=1)
    with gr.Row():
        seed, steps, guidance = _sampler_inputs()
        think = gr.Slider(0, MAX_THINK, value=2 if rsr else 0, step=1, label="latent steps T (RSR adapters)")
        n = gr.Slider(1, MAX_IMAGES, value=2, step=1, label="images")
    go = gr.Button("Generate", variant="primary", elem_id="t2i-generate")
    gallery = gr.Gallery(label="samples (left: base / T=0, right: the chosen adapter and T)", columns=4,
                         height=300, format="png", elem_id="t2i-gallery")
    report = gr.Markdown(elem_id="t2i-report")
    gr.Markdown("### Strip over T = 0..8 (one seed, RSR adapters)")
    strip_gallery = gr.Gallery(label="T = 0..8", columns=9, height=170, format="png", elem_id="t2i-strip")
    strip_report = gr.Markdown(elem_id="t2i-strip-report")
    args = [prompt, seed, steps, guidance, model]
    t2i = guarded(functools.partial(text_tab.text_to_image, service), 2)
    strip = guarded(functools.partial(text_tab.strip, service), 2)
    event = go.click(t2i, [*args, think, n], [gallery, report], api_name="generate", **SAMPLER)
    event.success(strip, args, [strip_gallery, strip_report], api_name="strip", **SAMPLER)
    return t2i, [*args, think, n], [gallery, report], strip, args, [strip_gallery, strip_report]


def _routing_tab(service: Service, rsr: list[str]):
    if not rsr:
        gr.Markdown("No RSR adapter loaded: start the page with `thinkpix serve --adapter DIR` (an adapter from "
                    "`thinkpix finetune`) to see which expert each image token chooses.", elem_id="routing-none")
    with gr.Row():
        prompt = gr.Textbox(DEFAULT_PROMPT, label="prompt", scale=3)
        model = gr.Dropdown(rsr or [BASE], value=(rsr or [BASE])[0], label="RSR adapter", scale=1)
    with gr.Row():
        seed, steps, guidance = _sampler_inputs()
        think = gr.Slider(1, MAX_THINK, value=2, step=1, label="latent steps T")
    go = gr.Button("Show routing", variant="primary", elem_id="routing-go")
    picture = gr.Image(label="expert per image token: rows = diffusion step, columns = RSR layer and latent step t",
                       type="numpy", interactive=False, format="png", elem_id="routing-image")
    report = gr.Markdown(elem_id="routing-report")
    go.click(guarded(functools.partial(routing_tab.routing, service), 2),
             [prompt, seed, steps, guidance, model, think], [picture, report], api_name="routing", **SAMPLER)


def _lake_tab(service: Service):
    if service.lake is None:
        gr.Markdown(lake_tab.NO_MODEL, elem_id="lake-none")
    with gr.Row():
        with gr.Column():
            board = gr.Image(lake_board.board(lake_board.parse(DEFAULT_MAP)), label="map: click a cell",
                             type="numpy", interactive=False, format="png", elem_id="lake-board")
            mode = gr.Radio(list(lake_board.MODES), value=lake_board.MODES[0], label="a click sets")
            text = gr.Textbox(DEFAULT_MAP, label="map rows (S start, G goal, H hole, . ice)", elem_id="lake-map")
            with gr.Row():
                size = gr.Slider(2, 8, value=5, step=1, label="size")
                length = gr.Slider(1, 14, value=5, step=1, label="path length")
                map_seed = gr.Number(value=0, label="map seed", precision=0, minimum=0)
            shuffle = gr.Button("Random map")
            edit_note = gr.Markdown(elem_id="lake-edit-note")
        with gr.Column():
            with gr.Row():
                think = gr.Slider(0, MAX_THINK, value=4 if service.lake_rsr else 0, step=1, label="latent steps T")
                seed = gr.Number(value=0, label="seed", precision=0, minimum=0)
                steps = gr.Slider(1, MAX_STEPS, value=20, step=1, label="sampler steps")
            go = gr.Button("Solve", variant="primary", elem_id="lake-solve")
            route = gr.Image(label="route", type="numpy", interactive=False, format="png", elem_id="lake-route")
            verdict = gr.Markdown(elem_id="lake-verdict")
            steps_gallery = gr.Gallery(label="route decoded at each latent step", columns=5, height=200,
                                       format="png", elem_id="lake-steps")

    def clicked(current: str, how: str, evt: gr.SelectData):
        new = lake_board.click(current, evt.index[0], evt.index[1], how)
        return new, lake_board.board(lake_board.parse(new)), ""

    def redraw(current: str):
        return lake_board.board(lake_board.parse(current)), ""

    def random_map(n, k, s):
        new = lake_board.random_text(n, k, s)
        return new, lake_board.board(lake_board.parse(new)), ""

    board.select(guarded(clicked, 3), [text, mode], [text, board, edit_note], api_name="lake_click")
    text.submit(guarded(redraw, 2), [text], [board, edit_note], api_name="lake_redraw")
    shuffle.click(guarded(random_map, 3), [size, length, map_seed], [text, board, edit_note], api_name="lake_random")
    go.click(guarded(functools.partial(lake_tab.solve, service), 3, note=1), [text, think, seed, steps],
             [route, verdict, steps_gallery], api_name="lake_solve", **SAMPLER)


def _class_tab(service: Service):
    if service.dit is None:
        gr.Markdown("No class-conditional model: " + "; ".join(service.notes))
        return
    with gr.Row():
        name = gr.Dropdown(service.dit.classes, value=service.dit.classes[0], allow_custom_value=True,
                           label="class", elem_id="class-name")
        seed, steps, guidance = _sampler_inputs()
        think = gr.Slider(0, MAX_THINK, value=0, step=1, label="latent steps T (needs --class_adapter)")
        n = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="images")
    go = gr.Button("Generate", variant="primary", elem_id="class-generate")
    gallery = gr.Gallery(label="samples", columns=4, height=300, format="png", elem_id="class-gallery")
    report = gr.Markdown(elem_id="class-report")
    go.click(guarded(functools.partial(class_tab.class_images, service), 2), [name, seed, steps, guidance, think, n],
             [gallery, report], api_name="class", **SAMPLER)


def build(service: Service, generate_on_load: bool = True) -> gr.Blocks:
    """The page. With `generate_on_load`, opening it draws the default prompt's samples at once."""
    rsr = [name for name, v in service.variants.items() if v.rsr]
    with gr.Blocks(title="thinkpix: latent steps", analytics_enabled=False) as demo:
        gr.Markdown("# thinkpix: see the latent steps\nRecursive Sparse Reasoning on the bundled shapes-world "
                    "models: samples with the evaluator's verdict, RSR routing, the lake, the class DiT.")
        with gr.Tab("Text to image", id="t2i"):
            t2i, inputs, outputs, strip, strip_inputs, strip_outputs = _text_tab(service, rsr)
        with gr.Tab("Routing", id="routing"):
            _routing_tab(service, rsr)
        with gr.Tab("Lake", id="lake"):
            _lake_tab(service)
        with gr.Tab("Class DiT", id="class"):
            _class_tab(service)
        if generate_on_load:
            demo.load(t2i, inputs, outputs, **SAMPLER).success(strip, strip_inputs, strip_outputs, **SAMPLER)
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, queue_size: int = 64,
           block: bool = True):
    """Serve the page on host:port (no share link, no telemetry); -> the local URL."""
    demo.queue(max_size=queue_size, default_concurrency_limit=4)
    _, url, _ = demo.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
                            quiet=True, show_error=False, footer_links=["api"], theme=gr.themes.Default())
    return url
