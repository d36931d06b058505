"""RSR on diffusers' real SD3Transformer2DModel (SD3 and SD3.5-style): what is SD3-specific.

The properties every backbone shares (zero-B identity, sparse == dense, batch independence, gradients,
detach, deep copy, save/load, bf16) are checked on SD3 and SD3.5 in test_rsr_backbones.py.
"""

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0
from rsr_backbones import make_sd3 as make
from rsr_backbones import processors, randomize, run
from rsr_backbones import sd3_inputs as inputs

from thinkpix import RSRConfig, attach_rsr, detach_rsr
from thinkpix.errors import ThinkpixError
from thinkpix.integrations import collect_rsr_outputs, get_rsr, set_latent_steps, start_trace, stop_trace
from thinkpix.integrations.sd3 import SD3RSRProcessor, estimate_forward_flops
from thinkpix.rsr import stack_trace

torch.set_num_threads(1)

ALL_LAYERS = [0, 1, 2]  # includes the last block (context_pre_only=True)


@pytest.mark.parametrize("kind", ["sd3", "sd35"])
def test_last_block_and_dual_attention_keep_their_roles(kind):
    """RSR takes the joint attention of every block, the last (context_pre_only) one included; the SD3.5
    second attention attn2 (image-only self-attention) keeps its original processor."""
    model = make(kind)
    originals = processors(model)
    attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=1))
    assert model.transformer_blocks[2].context_pre_only and model.transformer_blocks[2].attn.context_pre_only
    assert all(isinstance(b.attn.processor, SD3RSRProcessor) for b in model.transformer_blocks)
    dual = [i for i, b in enumerate(model.transformer_blocks) if b.attn2 is not None]
    assert dual == ([0] if kind == "sd35" else [])
    for i in dual:
        assert model.transformer_blocks[i].attn2.processor is originals[f"transformer_blocks.{i}.attn2"]


def test_trace_records_expert_per_token_per_layer_per_step():
    model = make()
    attach_rsr(model, RSRConfig(layers=[0, 2], num_experts=2, latent_steps=3))
    x = inputs()
    start_trace(model, states=True)
    run(model, x)
    run(model, x)
    trace = stop_trace(model)
    assert [t.layer for t in trace] == ["transformer_blocks.0", "transformer_blocks.2"] * 2
    t = trace[0]
    assert t.routing.shape == (3, 2, 16, 1) and t.routing.dtype == torch.int16
    assert t.states.shape == (3, 2, 16, 32) and torch.equal(t.timestep, x["timestep"])
    assert get_rsr(model).trace is None
    packed = stack_trace(trace)
    assert packed["layers"] == ["transformer_blocks.0", "transformer_blocks.2"]
    assert packed["routing"].shape == (2, 2, 3, 2, 16, 1) and packed["timesteps"].shape == (2, 2)
    assert packed["states"].shape == (2, 2, 3, 2, 16, 32)
    run(model, x)
    assert collect_rsr_outputs(model)[0].routing is None  # not tracing any more
    start_trace(model)  # routing only
    run(model, x)
    assert [t.states for t in stop_trace(model)] == [None, None]


def test_random_depth_in_training_fixed_depth_at_eval():
    model = make()
    attach_rsr(model, RSRConfig(layers=[0, 1], latent_steps=4, random_depth=True))
    x = inputs()
    model.train()
    torch.manual_seed(0)
    depths = set()
    for _ in range(12):
        run(model, x)
        steps = {o.steps for o in collect_rsr_outputs(model)}
        assert len(steps) == 1  # one depth per forward, shared by the layers
        depths |= steps
    assert depths == {1, 2, 3, 4}
    model.eval()
    run(model, x)
    assert {o.steps for o in collect_rsr_outputs(model)} == {4}


def test_attach_refuses_bad_requests():
    model = make()
    with pytest.raises(ThinkpixError, match="do not exist"):
        attach_rsr(model, RSRConfig(layers=[3]))
    attach_rsr(model, RSRConfig(layers=[1]))
    with pytest.raises(ThinkpixError, match="already attached"):
        attach_rsr(model, RSRConfig(layers=[1]))
    detach_rsr(model)
    model.transformer_blocks[1].attn.set_processor(AttnProcessor2_0())
    with pytest.raises(ThinkpixError, match="JointAttnProcessor2_0"):
        attach_rsr(model, RSRConfig(layers=[1]))
    with pytest.raises(ThinkpixError, match="no RSR attached"):
        set_latent_steps(model, 1)
    with pytest.raises(ThinkpixError, match="does not know"):
        attach_rsr(torch.nn.Linear(2, 2), RSRConfig(layers=[0]))


def test_project_backbone_and_joint_attention_kwargs():
    t2i = pytest.importorskip("thinkpix.models.t2i")
    model = t2i.build_transformer("tiny", in_channels=3, sample_size=32, patch_size=4, text_dim=16).eval()
    torch.manual_seed(0)
    x = dict(hidden_states=torch.randn(2, 3, 32, 32), encoder_hidden_states=torch.randn(2, 4, 16),
             pooled_projections=torch.randn(2, 16), timestep=torch.tensor([100.0, 900.0]), return_dict=False)
    ref = run(model, x)
    attach_rsr(model, RSRConfig(layers=list(range(len(model.transformer_blocks))), latent_steps=5))
    assert (run(model, x) - ref).abs().max() <= 1e-6


def test_flop_estimate():
    model = make()
    base = estimate_forward_flops(model, 2, 16, 5)
    assert base["rsr"] == 0 and base["base"] > 0
    cfg = RSRConfig(layers=ALL_LAYERS, latent_steps=2)
    f = [estimate_forward_flops(model, 2, 16, 5, cfg, steps=T)["rsr"] for T in (0, 1, 2, 3, 5)]
    assert f[0] == 0 and all(a < b for a, b in zip(f, f[1:]))
    m2 = estimate_forward_flops(model, 2, 16, 5, cfg)["total"]
    m16 = estimate_forward_flops(model, 2, 16, 5, cfg.replace(num_experts=16))["total"]
    # only the gate's output layer grows with the pool: 2 * hidden * (16 - 2) per token, step and layer
    assert m16 - m2 == 2 * cfg.gate_hidden * 14 * 2 * (2 * 16) * 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_training_step():
    model = make("sd35").to("cuda", torch.bfloat16)
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2, load_balance_weight=0.01))
    assert all(p.device.type == "cuda" and p.dtype == torch.float32 for p in rsr.parameters())
    x = {k: (v.to("cuda", torch.bfloat16) if torch.is_tensor(v) and k != "timestep" else
             v.cuda() if torch.is_tensor(v) else v) for k, v in inputs().items()}
    ref = run(model, x)
    detach_rsr(model)
    base = run(model, x)
    assert torch.equal(ref, base)  # zero B: identity, in bf16 on the GPU too
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2, load_balance_weight=0.01))
    randomize(rsr)
    model.train()
    out = model(**x)[0]
    loss = out.float().square().mean() + sum(o.aux_loss for o in collect_rsr_outputs(model))
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in rsr.parameters())
    model.eval()
    set_latent_steps(model, 3)
    torch.testing.assert_close(run(model, x), run(model, x), atol=0, rtol=0)
