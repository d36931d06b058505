"""`thinkpix serve [--port 7860] [--pretrained NAME_OR_FOLDER] [--adapter DIR]... [--lake_model DIR]`:
a web page (Gradio, the optional extra `pip install -e '.[web]'`) to try the models in a browser:
text to image with the evaluator's verdict drawn on each sample and a strip over latent steps, RSR
routing maps, the lake (draw a map, solve it, see the route at each latent step), the class DiT.
Runs on CPU with the bundled models; one sampler runs at a time (a request queue)."""

from __future__ import annotations

from .. import declarations as d
from ..deprecation import add_aliases
from ..schema import option


def register(sub) -> None:
    p = sub.add_parser("serve", help="a web page to try the models in a browser (needs thinkpix[web])",
                       description=__doc__)
    option(p, "--port", spec=d.PORT, default=7860)
    option(p, "--host", spec=d.HOST, default="127.0.0.1")
    option(p, "--pretrained", spec=d.PRETRAINED, metavar="NAME_OR_FOLDER",
           help="text-to-image base: a bundled name, a thinkpix model folder or a diffusers pipeline folder "
                "(default: the bundled shapes-base)")
    option(p, "--adapter", spec=d.ADAPTER, action="append", default=[], metavar="DIR",
           help="an RSR or LoRA adapter folder for the base (repeatable; each becomes a choice in the page)")
    add_aliases(p, option(p, "--class_model", spec=d.MODEL, metavar="DIR",
                          help="class-conditional model (default shapes-dit)"), "--class-model")
    add_aliases(p, option(p, "--class_adapter", spec=d.ADAPTER, metavar="DIR",
                          help="an RSR adapter for the class model"), "--class-adapter")
    add_aliases(p, option(p, "--lake_model", spec=d.MODEL, metavar="DIR",
                          help="a lake model folder (`thinkpix lake train`)"), "--lake-model")
    add_aliases(p, option(p, "--lake_adapter", spec=d.ADAPTER, metavar="DIR",
                          help="an adapter for it (`thinkpix lake finetune`)"), "--lake-adapter")
    add_aliases(p, option(p, "--queue_size", spec=d.QUEUE_SIZE, default=64), "--queue-size")
    option(p, "--threads", spec=d.THREADS, default=0)
    add_aliases(p, option(p, "--no_generate_on_load", spec=d.SWITCH,
                          help="do not draw the default prompt's samples when the page opens"), "--no-generate-on-load")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ThinkpixError

    if args.lake_adapter and not args.lake_model:
        raise ThinkpixError("--lake_adapter needs a --lake_model")
    try:
        from ..web import app
    except ImportError as exc:
        raise ThinkpixError(f"`thinkpix serve` needs the web extra ({exc.name} is missing): "
                            "pip install -e '.[web]'") from None
    import torch

    from ..web.service import load_service

    if args.threads:
        torch.set_num_threads(args.threads)
    service = load_service(args.pretrained, args.adapter, args.class_model, args.class_adapter, args.lake_model,
                           args.lake_adapter)
    demo = app.build(service, generate_on_load=not args.no_generate_on_load)
    print(f"thinkpix serve: http://{args.host}:{args.port} (Ctrl+C stops)", flush=True)
    app.launch(demo, args.host, args.port, args.queue_size, block=True)
    return 0
