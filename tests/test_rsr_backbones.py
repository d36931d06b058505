"""RSR properties every backbone must have, checked identically on tiny real diffusers transformers:
SD3, SD3.5-style (dual attention, qk_norm), DiT (class-conditional self-attention) and the FLUX
double-stream blocks. Backbone-specific behaviour is in test_rsr_sd3.py / _dit.py / _flux.py."""

import copy

import pytest
import torch
from rsr_backbones import BACKBONES, N_IMAGE, VARIANTS, hooks, processors, randomize, run, sample, train_step

from thinkpix import RSRConfig, attach_rsr, detach_rsr
from thinkpix.errors import ThinkpixError
from thinkpix.integrations import collect_rsr_outputs, load_rsr, save_rsr, set_latent_steps, start_trace, stop_trace

torch.set_num_threads(1)

SWITCHES = [dict(), dict(base_every_step=True), dict(remodulate=False), dict(gate="linear"), dict(routing="soft"),
            dict(state="projected"), dict(top_k=2, num_experts=3), dict(shared_experts=True), dict(reinject=False)]


@pytest.fixture(params=list(BACKBONES))
def bb(request):
    return BACKBONES[request.param]


def rsr_attn(model, bb, i):
    """The attention of block i whose processor RSR replaces."""
    return getattr(model.transformer_blocks[i], bb.attn)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_zero_B_is_the_base_model_for_every_depth(name):
    bb = VARIANTS[name]
    model, x = bb.make(), bb.inputs()
    ref = run(model, x)
    attach_rsr(model, RSRConfig(layers=bb.layers, latent_steps=1))
    assert isinstance(rsr_attn(model, bb, bb.layers[-1]).processor, bb.processor)  # the last block too
    for T in range(0, 6):
        set_latent_steps(model, T)
        diff = (run(model, x) - ref).abs().max().item()
        assert diff <= 1e-6, (name, T, diff)
        assert [o.steps for o in collect_rsr_outputs(model)] == ([T] * len(bb.layers) if T else [])


def test_zero_B_identity_holds_for_every_switch_in_training_mode(bb):
    x = bb.inputs()
    model = bb.make(**bb.no_dropout)  # hard routing draws Gumbel noise from the global RNG: keep DiT labels fixed
    ref = run(model, x)
    for sw in SWITCHES:
        attach_rsr(model, RSRConfig(layers=bb.layers, latent_steps=3, **sw))
        model.train()
        with torch.no_grad():
            out = model(**x)[0]
        model.eval()
        detach_rsr(model)
        assert (out - ref).abs().max() <= 1e-6, sw


def test_sparse_path_equals_dense_reference(bb):
    model, x = bb.make(), bb.inputs()
    rsr = attach_rsr(model, RSRConfig(layers=bb.layers, num_experts=4, latent_steps=3, top_k=2, alpha=20.0))  # scale 2.5
    randomize(rsr)
    sparse = run(model, x)
    rsr.config.expert_impl = "dense"
    dense = run(model, x)
    assert (sparse - run(bb.make(), x)).abs().max() > 1e-3  # the experts do something
    torch.testing.assert_close(sparse, dense, atol=1e-5, rtol=1e-5)


def test_one_step_one_expert_equals_the_base_with_merged_lora(bb):
    """T = 1, M = 1: image q/k/v = W x~ + E(x~) exactly where diffusers computes them (checks the wiring:
    SD3.5 q/k norms, FLUX text-first order, rotary and RMS norms)."""
    model, x = bb.make(), bb.inputs()
    rsr = attach_rsr(model, RSRConfig(layers=[1], num_experts=1, latent_steps=1, rank=4))
    randomize(rsr)
    out = run(model, x)
    merged = bb.make()
    e, attn = rsr.experts["1"], rsr_attn(merged, bb, 1)
    with torch.no_grad():
        for p, lin in enumerate((attn.to_q, attn.to_k, attn.to_v)):
            lin.weight += (e.A[0, :, p * 4:(p + 1) * 4] @ e.B[0, p]).T * e.scale  # (d_out, d_in)
    torch.testing.assert_close(out, run(merged, x), atol=1e-5, rtol=1e-5)


def test_eval_batch_of_one_equals_same_sample_in_batch_of_eight_and_is_deterministic(bb):
    model = bb.make()
    rsr = attach_rsr(model, RSRConfig(layers=bb.layers, num_experts=4, latent_steps=3))
    randomize(rsr)
    x8 = bb.inputs(batch=8)
    x1 = sample(x8, 3, bb)
    start_trace(model, states=True)
    out8, out8b = run(model, x8), run(model, x8)
    out1 = run(model, x1)
    trace = stop_trace(model)
    assert torch.equal(out8, out8b)  # deterministic at eval
    torch.testing.assert_close(out1[0], out8[3], atol=1e-5, rtol=1e-5)
    n = len(bb.layers)
    assert len(trace) == 3 * n
    r8, r8b, r1 = trace[0:n], trace[n:2 * n], trace[2 * n:3 * n]
    for a, b, c in zip(r8, r8b, r1):
        assert a.routing.shape == (3, 8, N_IMAGE, 1)  # (steps, B, N, k): image tokens only
        assert a.states.shape == (3, 8, N_IMAGE, bb.width)
        assert torch.equal(a.routing, b.routing)
        assert torch.equal(c.routing[:, 0], a.routing[:, 3])  # same routing alone as with batch-mates
    assert [t.layer for t in r8] == [f"transformer_blocks.{i}" for i in bb.layers]
    assert len(torch.cat([t.routing.flatten() for t in trace]).unique()) > 1  # routing is not trivial
    assert torch.equal(trace[0].timestep, x8["timestep"])


def test_gradients_reach_experts_and_gates_never_the_frozen_base(bb):
    model = bb.make()
    rsr = attach_rsr(model, RSRConfig(layers=bb.layers, latent_steps=2))
    model.train()
    base_params = [p for n, p in model.named_parameters() if not n.startswith("rsr.")]
    assert all(not p.requires_grad for p in base_params)
    assert all(p.requires_grad and p.dtype == torch.float32 for p in rsr.parameters())
    opt = torch.optim.SGD(rsr.parameters(), lr=1.0)
    x = bb.inputs()
    train_step(model, x)
    assert all(e.B.grad.abs().sum() > 0 for e in rsr.experts.values())  # B = 0: only B learns at first
    # zero B and zero-init gate outputs: step 1 moves B, step 2 the gates' output layers (through the
    # selected expert's probability) and A, step 3 the rest of the gates
    for seed in (6, 7):
        opt.step()
        opt.zero_grad()
        train_step(model, x, seed=seed)
    for key, e in rsr.experts.items():
        assert e.A.grad.abs().sum() > 0 and e.B.grad.abs().sum() > 0, key
    for key, g in rsr.gates.items():  # through the straight-through / probability-scaled selection
        for name, p in g.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (key, name)
    assert all(p.grad is None for p in base_params)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(bb):
    x = bb.inputs()
    results = []
    for ckpt in (False, True):
        model = bb.make()  # DiT: label dropout on; checkpoint recomputation replays the same drops
        rsr = attach_rsr(model, RSRConfig(layers=bb.layers, latent_steps=3, random_depth=True,
                                          load_balance_weight=0.01, z_loss_weight=0.001))
        randomize(rsr)
        if ckpt:
            model.enable_gradient_checkpointing()
        model.train()
        loss, outs = train_step(model, x)
        assert len(outs) == len(bb.layers) and outs[0].load_balance_loss is not None
        results.append((loss, {n: p.grad.clone() for n, p in rsr.named_parameters()}))
    assert torch.equal(results[0][0], results[1][0])
    for name, g in results[0][1].items():
        torch.testing.assert_close(g, results[1][1][name], atol=1e-6, rtol=1e-5)


def test_detach_restores_original_processors_outputs_hooks_and_requires_grad(bb):
    model, x = bb.make(), bb.inputs()
    model.transformer_blocks[0].norm1.linear.weight.requires_grad_(False)  # a user's own freezing survives
    originals = processors(model)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    n_hooks = hooks(model)
    ref = run(model, x)
    rsr = attach_rsr(model, RSRConfig(layers=bb.layers, latent_steps=2))
    randomize(rsr)
    assert isinstance(rsr_attn(model, bb, 0).processor, bb.processor)
    assert not torch.equal(run(model, x), ref)
    assert "rsr.experts.0.A" in model.state_dict()
    assert not any(".processor." in k for k in model.state_dict())  # one name per tensor
    detach_rsr(model)
    assert torch.equal(run(model, x), ref)
    assert processors(model).keys() == originals.keys()
    assert all(processors(model)[n] is p for n, p in originals.items())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert hooks(model) == n_hooks  # every module, forward and pre-hooks
    assert not hasattr(model, "rsr")


def test_deep_copy_runs_its_own_rsr_and_detaches_independently(bb):
    model, x = bb.make(), bb.inputs()
    base = run(model, x)
    rsr = attach_rsr(model, RSRConfig(layers=bb.layers, latent_steps=2))
    randomize(rsr)
    out = run(model, x)
    collect_rsr_outputs(model)
    twin = copy.deepcopy(model)  # e.g. an EMA copy
    assert twin.rsr is not rsr and rsr_attn(twin, bb, 0).processor.rsr is twin.rsr
    assert torch.equal(run(twin, x), out)
    assert len(collect_rsr_outputs(twin)) == len(bb.layers) and collect_rsr_outputs(model) == []
    with torch.no_grad():
        twin.rsr.experts["0"].B.zero_()
    assert torch.equal(run(model, x), out)  # the original does not see the copy's weights
    detach_rsr(twin)
    assert torch.equal(run(twin, x), base) and torch.equal(run(model, x), out)
    assert not hasattr(twin, "rsr") and hasattr(model, "rsr")


def test_save_load_round_trip(bb, tmp_path):
    model, x = bb.make(), bb.inputs()
    rsr = attach_rsr(model, RSRConfig(layers=[bb.layers[0], bb.layers[-1]], num_experts=3, latent_steps=2, rank=4))
    randomize(rsr)
    out = run(model, x)
    path = save_rsr(model, tmp_path / "adapter")
    fresh = bb.make()
    base = run(fresh, x)
    load_rsr(fresh, path)
    assert fresh.rsr.backbone["name"] == bb.name
    assert torch.equal(run(fresh, x), out)
    detach_rsr(fresh)
    assert torch.equal(run(fresh, x), base)


def test_bf16_base_on_cpu_keeps_fp32_adapter_and_stays_close_to_fp32(bb):
    """Tolerance (outputs of magnitude ~1-2): max |bf16 - fp32| <= 0.06 and mean <= 0.01 (bf16 keeps 8
    bits of mantissa: 0.4% per rounding, a few roundings deep); and the bf16 error is under half of
    what the adapter changes, so bf16 keeps the adapter's effect (measured: max 0.014-0.042, mean
    0.003-0.008 against a mean effect of 0.012-0.059)."""
    model, x = bb.make(), bb.inputs()
    base = run(model, x)
    rsr = attach_rsr(model, RSRConfig(layers=bb.layers, latent_steps=2))
    randomize(rsr)
    ref = run(model, x)
    model.to(torch.bfloat16)
    assert {p.dtype for p in rsr.parameters()} == {torch.float32}
    assert rsr_attn(model, bb, 0).to_q.weight.dtype == torch.bfloat16
    xb = {k: (v.bfloat16() if k in bb.float_inputs else v) for k, v in x.items()}
    out = run(model, xb)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    err = (out.float() - ref).abs()
    assert err.max() <= 0.06 and err.mean() <= 0.01, (err.max(), err.mean())
    assert err.mean() < 0.5 * (ref - base).abs().mean()


@pytest.mark.parametrize("name", ["sd3", "sd35", "flux"])  # DiT: per-block fused processors, in test_rsr_dit.py
def test_fused_qkv_projections_are_refused_until_unfused(name):
    fused = BACKBONES[name].make()
    fused.fuse_qkv_projections()
    with pytest.raises(ThinkpixError, match="unfuse_qkv_projections"):
        attach_rsr(fused, RSRConfig(layers=[0]))
    assert not hasattr(fused, "rsr")
    fused.unfuse_qkv_projections()
    attach_rsr(fused, RSRConfig(layers=[0]))
