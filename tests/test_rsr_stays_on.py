"""RSR cannot be switched off silently: after attaching, `fuse_qkv_projections()` and
`set_attn_processor()` are refused before they change anything, and a processor replaced on one attention
module (`attn.set_processor`) stops the next forward with one error instead of running the base model while
`get_rsr` still returns RSR. After `detach_rsr` both work as in diffusers."""

import pytest
import torch

from thinkpix import RSRConfig, attach_rsr, detach_rsr
from thinkpix.errors import ThinkpixError
from tiny_pipelines import dit_pipeline, sd3_pipeline

SPEC = RSRConfig.parse("layers=0,experts=2,latent_steps=2,rank=2")


def processors(transformer) -> dict:
    return {k: type(v).__name__ for k, v in transformer.attn_processors.items()}


@pytest.mark.parametrize("call", ["fuse_qkv_projections", "set_attn_processor"])
def test_processor_changes_after_attaching_are_refused_and_change_nothing(tmp_path, call):
    transformer = sd3_pipeline(tmp_path).transformer
    attach_rsr(transformer, SPEC)
    before = processors(transformer)
    args = () if call == "fuse_qkv_projections" else (dict(transformer.attn_processors),)
    with pytest.raises(ThinkpixError, match="turn it off silently"):
        getattr(transformer, call)(*args)
    assert processors(transformer) == before and before["transformer_blocks.0.attn.processor"] == "SD3RSRProcessor"
    detach_rsr(transformer)
    getattr(transformer, call)(*args)  # diffusers' own method again


@pytest.mark.parametrize("kind", ["sd3", "dit"])
def test_a_processor_replaced_on_one_module_stops_the_next_forward(tmp_path, kind):
    from diffusers.models.attention_processor import AttnProcessor2_0, JointAttnProcessor2_0

    pipe = (sd3_pipeline if kind == "sd3" else dit_pipeline)(tmp_path)
    attach_rsr(pipe.transformer, SPEC)
    block = pipe.transformer.transformer_blocks[0]
    if kind == "sd3":
        block.attn.set_processor(JointAttnProcessor2_0())
        run = lambda: pipe(prompt="a", num_inference_steps=1, height=32, width=32, output_type="np")  # noqa: E731
    else:
        block.attn1.set_processor(AttnProcessor2_0())
        run = lambda: pipe(class_labels=[0], num_inference_steps=1, output_type="np")  # noqa: E731
    with pytest.raises(ThinkpixError, match="turns RSR off"):
        with torch.no_grad():
            run()
