"""Fixtures of the web page's tests: tiny models, and the page served on a free localhost port."""

import os
import socket

import pytest

CHROMIUM = "/usr/bin/chromium"
# Debian's chromium, headless, nothing fetched from outside (no sync, no component updates, no QUIC)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def missing_for_browser() -> list[str]:
    """What the browser test needs and this machine lacks (empty when it can run)."""
    import importlib.util

    out = [f"the python package {m}" for m in ("gradio", "gradio_client", "playwright")
           if importlib.util.find_spec(m) is None]
    return out + ([] if os.access(CHROMIUM, os.X_OK) else [CHROMIUM])


@pytest.fixture(scope="session")
def one_thread():
    """Two cores are shared with other work: the page samples on one torch thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """{'adapter': an RSR adapter on the bundled base, 'lake': a lake model with RSR trained in}."""
    from . import tiny_models

    out = tmp_path_factory.mktemp("web_models")
    return {"adapter": tiny_models.rsr_adapter(out), "lake": tiny_models.lake_model(out)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(service, generate_on_load: bool = True):
    """Launch the page for `service` in this process -> (url, demo)."""
    from thinkpix.web import app

    demo = app.build(service, generate_on_load)
    url = app.launch(demo, "127.0.0.1", free_port(), block=False)
    return url, demo


def stop(demo, service) -> None:
    """Close the server, then wait for a sampler still running in it (a test that timed out leaves one),
    so that no thread is inside torch when the interpreter exits."""
    demo.close()
    if service.lock.acquire(timeout=600):
        service.lock.release()


def pytest_terminal_summary(terminalreporter):
    """Say in the plain `make test` output why the browser test was skipped, without -rs."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "test_browser" in r.nodeid]
    if skipped and missing_for_browser():
        terminalreporter.write_line(f"tests/web/test_browser.py: {len(skipped)} browser test(s) skipped, this machine "
                                    f"lacks {', '.join(missing_for_browser())}; run `make test-web`", yellow=True)
