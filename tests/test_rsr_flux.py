"""RSR attached to the double-stream blocks of diffusers' real FluxTransformer2DModel at tiny configs."""

import copy

import pytest
import torch
from diffusers import DiTTransformer2DModel, FluxTransformer2DModel

from thinkpix import RSRConfig, attach_rsr, detach_rsr
from thinkpix.errors import ThinkpixError
from thinkpix.integrations import (collect_rsr_outputs, load_rsr, save_rsr, set_latent_steps, start_trace,
                                   stop_trace)
from thinkpix.integrations.flux import FluxRSRProcessor, estimate_forward_flops

torch.set_num_threads(1)

TINY = dict(patch_size=1, in_channels=4, num_layers=2, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(4, 4, 8))
ALL_LAYERS = [0, 1]  # every double-stream block
N, L = 16, 5  # image tokens (4 x 4 grid), text tokens


def make(seed=0, **over):
    torch.manual_seed(seed)
    return FluxTransformer2DModel(**dict(TINY, **over)).eval()


def inputs(batch=2, seed=1, guidance=False):
    g = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1)
    x = dict(hidden_states=torch.randn(batch, N, 4, generator=g),
             encoder_hidden_states=torch.randn(batch, L, 32, generator=g),
             pooled_projections=torch.randn(batch, 32, generator=g), timestep=torch.rand(batch, generator=g),
             img_ids=grid.reshape(-1, 3), txt_ids=torch.zeros(L, 3), return_dict=False)
    if guidance:
        x["guidance"] = torch.full((batch,), 3.5)
    return x


def randomize(rsr, seed=3, gate_std=1.0):
    """A trained-looking adapter: non-zero experts and gates that spread tokens over the experts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for e in rsr.experts.values():
            e.B.normal_(0, 0.2, generator=g)
        for gate in rsr.gates.values():
            last = gate.out if gate.out is not None else gate.token_in
            last.weight.normal_(0, gate_std, generator=g)


def run(model, x):
    with torch.no_grad():
        return model(**x)[0]


@pytest.mark.parametrize("guidance", [False, True])
def test_zero_B_is_the_base_model_for_every_depth(guidance):
    model, x = make(guidance_embeds=guidance), inputs(guidance=guidance)
    ref = run(model, x)
    attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=1))
    assert isinstance(model.transformer_blocks[1].attn.processor, FluxRSRProcessor)
    assert type(model.single_transformer_blocks[0].attn.processor).__name__ == "FluxAttnProcessor"
    for T in range(0, 6):
        set_latent_steps(model, T)
        diff = (run(model, x) - ref).abs().max().item()
        assert diff <= 1e-6, (T, diff)
        assert [o.steps for o in collect_rsr_outputs(model)] == ([T] * 2 if T else [])


def test_zero_B_identity_holds_for_every_switch_in_training_mode_and_with_a_text_mask():
    x = inputs()
    switches = [dict(), dict(base_every_step=True), dict(remodulate=False), dict(gate="linear"), dict(routing="soft"),
                dict(state="projected"), dict(top_k=2, num_experts=3), dict(shared_experts=True)]
    model = make()
    ref = run(model, x)
    for sw in switches:
        attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=3, **sw))
        model.train()
        with torch.no_grad():
            out = model(**x)[0]
        model.eval()
        detach_rsr(model)
        assert (out - ref).abs().max() <= 1e-6, sw
    mask = torch.ones(2, L + N, dtype=torch.bool)
    mask[0, 3:L] = False  # padded text tokens of the first sample (text comes first in the joint sequence)
    xm = dict(x, joint_attention_kwargs={"attention_mask": mask})
    ref = run(model, xm)
    assert not torch.equal(ref, run(model, x))
    attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=3))
    assert (run(model, xm) - ref).abs().max() <= 1e-6


def test_sparse_path_equals_dense_reference():
    model, x = make(), inputs()
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, num_experts=4, latent_steps=3, top_k=2))
    randomize(rsr)
    sparse = run(model, x)
    rsr.config.expert_impl = "dense"
    dense = run(model, x)
    assert (sparse - run(make(), x)).abs().max() > 1e-3  # the experts do something
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)


def test_one_step_one_expert_equals_the_base_with_merged_lora():
    """T = 1, M = 1: image q/k/v = W x~ + E(x~) where diffusers computes them: text first, rotary, RMS norms."""
    model, x = make(), inputs()
    rsr = attach_rsr(model, RSRConfig(layers=[1], num_experts=1, latent_steps=1, rank=4))
    randomize(rsr)
    out = run(model, x)
    merged = make()
    e, attn = rsr.experts["1"], merged.transformer_blocks[1].attn
    with torch.no_grad():
        for p, lin in enumerate((attn.to_q, attn.to_k, attn.to_v)):
            lin.weight += (e.A[0, :, p * 4:(p + 1) * 4] @ e.B[0, p]).T * e.scale
    torch.testing.assert_close(out, run(merged, x), atol=1e-5, rtol=1e-5)


def test_image_only_intermediate_queries_equal_the_joint_attention_rows():
    """Intermediate steps attend with image queries only; with a mask they compute every row. Same numbers."""
    model, x = make(), inputs()
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, num_experts=3, latent_steps=3))
    randomize(rsr)
    fast = run(model, x)
    full = run(model, dict(x, joint_attention_kwargs={"attention_mask": torch.ones(2, L + N, dtype=torch.bool)}))
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)


def test_eval_batch_of_one_equals_same_sample_in_batch_of_eight_and_is_deterministic():
    model = make()
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, num_experts=4, latent_steps=3))
    randomize(rsr)
    x8 = inputs(batch=8)
    x1 = {k: (v[3:4] if torch.is_tensor(v) and k not in ("img_ids", "txt_ids") else v) for k, v in x8.items()}
    start_trace(model, states=True)
    out8, out8b = run(model, x8), run(model, x8)
    out1 = run(model, x1)
    trace = stop_trace(model)
    assert torch.equal(out8, out8b)  # deterministic at eval
    torch.testing.assert_close(out1[0], out8[3], atol=1e-5, rtol=1e-5)
    r8, r8b, r1 = trace[0:2], trace[2:4], trace[4:6]
    for a, b, c in zip(r8, r8b, r1):
        assert a.routing.shape == (3, 8, N, 1) and a.states.shape == (3, 8, N, 32)  # image tokens only
        assert torch.equal(a.routing, b.routing)
        assert torch.equal(c.routing[:, 0], a.routing[:, 3])  # same routing alone as with batch-mates
    assert [t.layer for t in r8] == ["transformer_blocks.0", "transformer_blocks.1"]
    assert len(torch.cat([t.routing.flatten() for t in trace]).unique()) > 1  # routing is not trivial


def _train_step(model, x, seed=5):
    torch.manual_seed(seed)
    out = model(**x)[0]
    outs = collect_rsr_outputs(model)
    loss = out.square().mean() + sum(o.aux_loss for o in outs)
    loss.backward()
    return loss.detach(), outs


def test_gradients_reach_experts_and_gates_never_the_frozen_base():
    model = make()
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2))
    model.train()
    base_params = [p for n, p in model.named_parameters() if not n.startswith("rsr.")]
    assert all(not p.requires_grad for p in base_params)
    opt = torch.optim.SGD(rsr.parameters(), lr=1.0)
    x = inputs()
    _train_step(model, x)
    assert all(e.B.grad.abs().sum() > 0 for e in rsr.experts.values())  # B = 0: only B learns at first
    for seed in (6, 7):  # step 1 moves B, step 2 the gates' output layers and A, step 3 the rest of the gates
        opt.step()
        opt.zero_grad()
        _train_step(model, x, seed=seed)
    for key, e in rsr.experts.items():
        assert e.A.grad.abs().sum() > 0 and e.B.grad.abs().sum() > 0, key
    for key, g in rsr.gates.items():
        for name, p in g.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (key, name)
    assert all(p.grad is None for p in base_params)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    x = inputs()
    results = []
    for ckpt in (False, True):
        model = make()
        rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=3, random_depth=True,
                                          load_balance_weight=0.01))
        randomize(rsr)
        if ckpt:
            model.enable_gradient_checkpointing()
        model.train()
        loss, outs = _train_step(model, x)
        assert len(outs) == 2
        results.append((loss, {n: p.grad.clone() for n, p in rsr.named_parameters()}))
    assert torch.equal(results[0][0], results[1][0])
    for name, g in results[0][1].items():
        torch.testing.assert_close(g, results[1][1][name], atol=1e-6, rtol=1e-5)


def test_detach_restores_original_processors_outputs_hooks_and_requires_grad():
    model, x = make(), inputs()
    originals = dict(model.attn_processors)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    hooks = (len(model._forward_pre_hooks), [len(b._forward_pre_hooks) for b in model.transformer_blocks])
    ref = run(model, x)
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2))
    randomize(rsr)
    assert not torch.equal(run(model, x), ref)
    assert not any(".processor." in k for k in model.state_dict())  # one name per tensor
    twin = copy.deepcopy(model)  # e.g. an EMA copy: its own RSR
    assert twin.transformer_blocks[0].attn.processor.rsr is twin.rsr
    assert torch.equal(run(twin, x), run(model, x))
    detach_rsr(model)
    assert torch.equal(run(model, x), ref)
    assert all(model.attn_processors[n] is p for n, p in originals.items())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert (len(model._forward_pre_hooks), [len(b._forward_pre_hooks) for b in model.transformer_blocks]) == hooks
    assert not hasattr(model, "rsr") and hasattr(twin, "rsr")


def test_save_load_round_trip_and_cross_backbone_refusal(tmp_path):
    model, x = make(), inputs()
    cfg = RSRConfig(layers=[1], num_experts=3, latent_steps=2, rank=4)
    rsr = attach_rsr(model, cfg)
    randomize(rsr)
    out = run(model, x)
    path = save_rsr(model, tmp_path / "flux_adapter")
    fresh = make()
    load_rsr(fresh, path)
    assert fresh.rsr.backbone["name"] == "flux"
    assert torch.equal(run(fresh, x), out)
    with pytest.raises(ThinkpixError, match="num_blocks"):
        load_rsr(make(num_layers=3), path)
    torch.manual_seed(0)
    dit = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=16, in_channels=4, num_layers=2,
                                sample_size=8, patch_size=2, num_embeds_ada_norm=10)
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
    fused = make()
    fused.fuse_qkv_projections()
    with pytest.raises(ThinkpixError, match="unfuse_qkv_projections"):
        attach_rsr(fused, RSRConfig(layers=[0]))
    fused.unfuse_qkv_projections()
    attach_rsr(fused, RSRConfig(layers=[0]))

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


def test_bf16_base_on_cpu_keeps_fp32_adapter():
    model = make()
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2))
    randomize(rsr)
    model.to(torch.bfloat16)
    assert {p.dtype for p in rsr.parameters()} == {torch.float32}
    assert model.transformer_blocks[0].attn.to_q.weight.dtype == torch.bfloat16
    x = {k: (v.bfloat16() if k in ("hidden_states", "encoder_hidden_states", "pooled_projections") else v)
         for k, v in inputs().items()}
    out = run(model, x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
