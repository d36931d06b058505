"""RSR attached to diffusers' real SD3Transformer2DModel (SD3 and SD3.5-style) at tiny configs."""

import pytest
import torch
from diffusers import SD3Transformer2DModel
from diffusers.models.attention_processor import AttnProcessor2_0

from thinkpix import RSRConfig, attach_rsr, detach_rsr
from thinkpix.errors import ThinkpixError
from thinkpix.integrations import collect_rsr_outputs, get_rsr, set_latent_steps, start_trace, stop_trace
from thinkpix.integrations.sd3 import SD3RSRProcessor, estimate_forward_flops
from thinkpix.rsr import stack_trace

torch.set_num_threads(1)

TINY = dict(sample_size=8, patch_size=2, in_channels=4, num_layers=3, attention_head_dim=8, num_attention_heads=4,
            joint_attention_dim=32, caption_projection_dim=32, pooled_projection_dim=16, out_channels=4,
            pos_embed_max_size=16)
SD35 = dict(TINY, dual_attention_layers=(0,), qk_norm="rms_norm")
CONFIGS = {"sd3": TINY, "sd35": SD35}
ALL_LAYERS = [0, 1, 2]  # includes the last block (context_pre_only=True)


def make(kind="sd3", seed=0):
    torch.manual_seed(seed)
    return SD3Transformer2DModel(**CONFIGS[kind]).eval()


def inputs(batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(batch, 4, 8, 8, generator=g),
                encoder_hidden_states=torch.randn(batch, 5, 32, generator=g),
                pooled_projections=torch.randn(batch, 16, generator=g),
                timestep=torch.rand(batch, generator=g) * 1000, return_dict=False)


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


@pytest.mark.parametrize("kind", ["sd3", "sd35"])
def test_zero_B_is_the_base_model_for_every_depth(kind):
    model, x = make(kind), inputs()
    ref = run(model, x)
    attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=1))
    assert model.transformer_blocks[2].context_pre_only and model.transformer_blocks[2].attn.context_pre_only
    for T in range(0, 6):
        set_latent_steps(model, T)
        diff = (run(model, x) - ref).abs().max().item()
        assert diff <= 1e-6, (kind, T, diff)
        assert [o.steps for o in collect_rsr_outputs(model)] == ([T] * 3 if T else [])


def test_zero_B_identity_holds_for_every_switch_in_training_mode():
    x = inputs()
    switches = [dict(base_every_step=True), dict(remodulate=False), dict(gate="linear"), dict(routing="soft"),
                dict(state="projected"), dict(top_k=2, num_experts=3), dict(shared_experts=True)]
    model = make("sd35")
    ref = run(model, x)
    for sw in switches:
        attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=3, **sw))
        model.train()
        with torch.no_grad():
            out = model(**x)[0]
        model.eval()
        detach_rsr(model)
        assert (out - ref).abs().max() <= 1e-6, sw


@pytest.mark.parametrize("kind", ["sd3", "sd35"])
def test_sparse_path_equals_dense_reference(kind):
    model, x = make(kind), inputs()
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, num_experts=4, latent_steps=3, top_k=2))
    randomize(rsr)
    sparse = run(model, x)
    rsr.config.expert_impl = "dense"
    dense = run(model, x)
    assert (sparse - run(make(kind), x)).abs().max() > 1e-3  # the experts do something
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)


def test_eval_batch_of_one_equals_same_sample_in_batch_of_eight_and_is_deterministic():
    model = make("sd35")
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, num_experts=4, latent_steps=3))
    randomize(rsr)
    x8 = inputs(batch=8)
    x1 = {k: (v[3:4] if torch.is_tensor(v) else v) for k, v in x8.items()}
    start_trace(model)
    out8, out8b = run(model, x8), run(model, x8)
    out1 = run(model, x1)
    trace = stop_trace(model)
    assert torch.equal(out8, out8b)  # deterministic at eval
    torch.testing.assert_close(out1[0], out8[3], atol=1e-5, rtol=1e-5)
    r8, r8b, r1 = trace[0:3], trace[3:6], trace[6:9]
    for a, b, c in zip(r8, r8b, r1):
        assert torch.equal(a.routing, b.routing)
        assert torch.equal(c.routing[:, 0], a.routing[:, 3])  # same routing alone as with batch-mates
    used = torch.cat([t.routing.flatten() for t in trace]).unique()
    assert len(used) > 1  # routing is not trivial


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


def _train_step(model, x, seed=5):
    torch.manual_seed(seed)
    out = model(**x)[0]
    outs = collect_rsr_outputs(model)
    loss = out.square().mean() + sum(o.aux_loss for o in outs)
    loss.backward()
    return loss.detach(), outs


def test_gradients_reach_experts_and_gates_never_the_frozen_base():
    model = make("sd35")
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2))
    model.train()
    base_params = [p for n, p in model.named_parameters() if not n.startswith("rsr.")]
    assert all(not p.requires_grad for p in base_params)
    assert all(p.requires_grad and p.dtype == torch.float32 for p in rsr.parameters())
    opt = torch.optim.SGD(rsr.parameters(), lr=1.0)
    x = inputs()
    _train_step(model, x)
    assert all(e.B.grad.abs().sum() > 0 for e in rsr.experts.values())  # B = 0: only B learns at first
    # zero B and zero-init gate outputs: step 1 moves B, step 2 the gates' output layers (through the
    # selected expert's probability), step 3 the rest of the gates
    for seed in (6, 7):
        opt.step()
        opt.zero_grad()
        _train_step(model, x, seed=seed)
    for key, e in rsr.experts.items():
        assert e.A.grad.abs().sum() > 0 and e.B.grad.abs().sum() > 0, key
    for key, g in rsr.gates.items():  # through the straight-through / probability-scaled selection
        for name, p in g.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (key, name)
    assert all(p.grad is None for p in base_params)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    x = inputs()
    results = []
    for ckpt in (False, True):
        model = make("sd35")
        rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=3, random_depth=True,
                                          load_balance_weight=0.01, z_loss_weight=0.001))
        randomize(rsr)
        if ckpt:
            model.enable_gradient_checkpointing()
        model.train()
        loss, outs = _train_step(model, x)
        assert len(outs) == 3 and outs[0].load_balance_loss is not None
        results.append((loss, {n: p.grad.clone() for n, p in rsr.named_parameters()}))
    assert torch.equal(results[0][0], results[1][0])
    for name, g in results[0][1].items():
        torch.testing.assert_close(g, results[1][1][name], atol=1e-6, rtol=1e-5)


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


def test_detach_restores_original_processors_outputs_and_requires_grad():
    model, x = make("sd35"), inputs()
    model.transformer_blocks[0].norm1.linear.weight.requires_grad_(False)  # a user's own freezing survives
    originals = {n: p for n, p in model.attn_processors.items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    n_hooks = (len(model._forward_pre_hooks), [len(b._forward_pre_hooks) for b in model.transformer_blocks])
    ref = run(model, x)
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2))
    randomize(rsr)
    assert isinstance(model.transformer_blocks[0].attn.processor, SD3RSRProcessor)
    assert model.transformer_blocks[0].attn2.processor is originals["transformer_blocks.0.attn2.processor"]
    assert not torch.equal(run(model, x), ref)
    assert "rsr.experts.0.A" in model.state_dict()
    assert not any(".processor." in k for k in model.state_dict())  # one name per tensor
    detach_rsr(model)
    assert torch.equal(run(model, x), ref)
    assert all(model.attn_processors[n] is p for n, p in originals.items())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert (len(model._forward_pre_hooks), [len(b._forward_pre_hooks) for b in model.transformer_blocks]) == n_hooks
    assert not hasattr(model, "rsr")


def test_deep_copy_runs_its_own_rsr_and_detaches_independently():
    import copy

    model, x = make("sd35"), inputs()
    base = run(model, x)
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2))
    randomize(rsr)
    out = run(model, x)
    collect_rsr_outputs(model)
    twin = copy.deepcopy(model)  # e.g. an EMA copy
    assert twin.rsr is not rsr and twin.transformer_blocks[0].attn.processor.rsr is twin.rsr
    assert torch.equal(run(twin, x), out)
    assert len(collect_rsr_outputs(twin)) == 3 and collect_rsr_outputs(model) == []
    with torch.no_grad():
        twin.rsr.experts["0"].B.zero_()
    assert torch.equal(run(model, x), out)  # the original does not see the copy's weights
    detach_rsr(twin)
    assert torch.equal(run(twin, x), base) and torch.equal(run(model, x), out)


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
    fused = make()
    fused.fuse_qkv_projections()
    with pytest.raises(ThinkpixError, match="unfuse_qkv_projections"):
        attach_rsr(fused, RSRConfig(layers=[0]))
    fused.unfuse_qkv_projections()
    attach_rsr(fused, RSRConfig(layers=[0]))
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


def test_bf16_base_on_cpu_keeps_fp32_adapter():
    model = make("sd35")
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2))
    randomize(rsr)
    model.to(torch.bfloat16)
    assert {p.dtype for p in rsr.parameters()} == {torch.float32}
    assert model.transformer_blocks[0].attn.to_q.weight.dtype == torch.bfloat16
    x = {k: (v.bfloat16() if torch.is_tensor(v) and k != "timestep" else v) for k, v in inputs().items()}
    out = run(model, x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


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
