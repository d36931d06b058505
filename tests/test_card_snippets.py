"""Every model card's Python snippet runs as written (the adapter folder put in for THIS_FOLDER), for
every backbone: SD3 and FLUX take the latent steps per call, a DiT pipeline (class labels, no attention
kwargs) on the transformer."""

import re

import pytest

from thinkpix import RSRConfig, attach_rsr, save_rsr
from tiny_pipelines import BUILDERS


@pytest.mark.parametrize("kind", ["sd3", "flux", "dit"])
def test_the_model_cards_usage_snippet_runs(tmp_path, kind):
    from diffusers import DiffusionPipeline

    base = tmp_path / "base"
    BUILDERS[kind](tmp_path / "tok").save_pretrained(base, safe_serialization=True)
    transformer = DiffusionPipeline.from_pretrained(base).transformer
    attach_rsr(transformer, RSRConfig.parse("layers=0,experts=2,latent_steps=2,rank=2"))
    adapter = save_rsr(transformer, tmp_path / "adapter", base_name=str(base))
    card = (adapter / "README.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", card, flags=re.S)
    assert len(snippets) == 1, card
    code = snippets[0].replace("THIS_FOLDER", str(adapter))
    if kind == "flux":  # the snippet as written, at a size the tiny test pipeline runs in seconds
        code = code.replace(").images[0]", ", height=32, width=32, num_inference_steps=2).images[0]")
    scope: dict = {}
    exec(compile(code, f"{kind} card", "exec"), scope)
    assert scope["image"].size[0] > 0
