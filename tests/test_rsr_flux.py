"""RSR on the double-stream blocks of diffusers' real FluxTransformer2DModel: what is FLUX-specific
(single-stream refusal, text-first joint sequence and masks). The properties every backbone shares are
checked on FLUX (with and without a guidance embedding) in test_rsr_backbones.py."""

import pytest
import torch
from rsr_backbones import N_IMAGE as N
from rsr_backbones import N_TEXT as L
from rsr_backbones import flux_inputs as inputs
from rsr_backbones import make_dit
from rsr_backbones import make_flux as make
from rsr_backbones import randomize, run

from thinkpix import RSRConfig, attach_rsr
from thinkpix.errors import ThinkpixError
from thinkpix.integrations import load_rsr, save_rsr
from thinkpix.integrations.flux import FluxRSRProcessor, estimate_forward_flops

torch.set_num_threads(1)

ALL_LAYERS = [0, 1]  # every double-stream block


def test_single_stream_blocks_keep_their_processor():
    model = make()
    attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=1))
    assert all(isinstance(b.attn.processor, FluxRSRProcessor) for b in model.transformer_blocks)
    assert type(model.single_transformer_blocks[0].attn.processor).__name__ == "FluxAttnProcessor"


def test_zero_B_identity_with_a_text_mask():
    model, x = make(), inputs()
    mask = torch.ones(2, L + N, dtype=torch.bool)
    mask[0, 3:L] = False  # padded text tokens of the first sample (text comes first in the joint sequence)
    xm = dict(x, joint_attention_kwargs={"attention_mask": mask})
    ref = run(model, xm)
    assert not torch.equal(ref, run(model, x))
    attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=3))
    assert (run(model, xm) - ref).abs().max() <= 1e-6


def test_image_only_intermediate_queries_equal_the_joint_attention_rows():
    """Intermediate steps attend with image queries only; with a mask they compute every row. Same numbers."""
    model, x = make(), inputs()
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, num_experts=3, latent_steps=3))
    randomize(rsr)
    fast = run(model, x)
    full = run(model, dict(x, joint_attention_kwargs={"attention_mask": torch.ones(2, L + N, dtype=torch.bool)}))
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)


def test_adapters_of_other_block_counts_and_backbones_are_refused(tmp_path):
    cfg = RSRConfig(layers=[1], num_experts=3, latent_steps=2, rank=4)
    model = make()
    attach_rsr(model, cfg)
    path = save_rsr(model, tmp_path / "flux_adapter")
    with pytest.raises(ThinkpixError, match="num_blocks"):
        load_rsr(make(num_layers=3), path)
    dit = make_dit(attention_head_dim=16, num_layers=2, out_channels=None)  # the same width as the FLUX blocks
    with pytest.raises(ThinkpixError, match="saved for name='flux', this transformer has name='dit'"):
        load_rsr(dit, path)
    assert not hasattr(dit, "rsr")
    attach_rsr(dit, cfg)
    with pytest.raises(ThinkpixError, match="saved for name='dit', this transformer has name='flux'"):
        load_rsr(make(), save_rsr(dit, tmp_path / "dit_adapter"))


def test_attach_refuses_single_stream_blocks_and_unsupported_processors():
    model = make()
    with pytest.raises(ThinkpixError, match=r"Single-stream blocks .* are not supported") as err:
        attach_rsr(model, RSRConfig(layers=[0, 2]))  # index 2 would be single_transformer_blocks[0]
    assert "transformer_blocks (0..1)" in str(err.value)
    assert not hasattr(model, "rsr")

    class OtherProcessor:
        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                     image_rotary_emb=None):
            raise AssertionError("not called")

    model.transformer_blocks[1].attn.set_processor(OtherProcessor())
    with pytest.raises(ThinkpixError, match="FluxAttnProcessor"):
        attach_rsr(model, RSRConfig(layers=[1]))


def test_flop_estimate():
    from torch.utils.flop_counter import FlopCounterMode

    model, x = make(), inputs()
    base = estimate_forward_flops(model, 2, N, L)
    assert base["rsr"] == 0
    with FlopCounterMode(display=False) as counter:
        run(model, x)
    attention = 3 * 4 * 2 * (N + L) ** 2 * 32  # QK^T + AV in 3 blocks; torch's counter skips SDPA on CPU
    assert base["total"] in (counter.get_total_flops(), counter.get_total_flops() + attention)  # exact
    cfg = RSRConfig(layers=ALL_LAYERS, latent_steps=2)
    f = [estimate_forward_flops(model, 2, N, L, cfg, steps=T)["rsr"] for T in (0, 1, 2, 3, 5)]
    assert f[0] == 0 and all(a < b for a, b in zip(f, f[1:]))
    m2 = estimate_forward_flops(model, 2, N, L, cfg)["total"]
    m16 = estimate_forward_flops(model, 2, N, L, cfg.replace(num_experts=16))["total"]
    assert m16 - m2 == 2 * cfg.gate_hidden * 14 * 2 * (2 * N) * 2  # only the gate's output layer grows
