"""RSR attached to diffusers' real DiTTransformer2DModel (class-conditional, adaLN-Zero self-attention), tiny."""

import copy

import pytest
import torch
from diffusers import DiTTransformer2DModel, SD3Transformer2DModel
from diffusers.models.attention_processor import AttnProcessor, FusedAttnProcessor2_0

from thinkpix import RSRConfig, attach_rsr, detach_rsr
from thinkpix.errors import ThinkpixError
from thinkpix.integrations import (collect_rsr_outputs, load_rsr, save_rsr, set_latent_steps, start_trace,
                                   stop_trace)
from thinkpix.integrations.dit import DiTRSRProcessor, estimate_forward_flops

torch.set_num_threads(1)

TINY = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=3, sample_size=8,
            patch_size=2, num_embeds_ada_norm=10, norm_type="ada_norm_zero")
ALL_LAYERS = [0, 1, 2]
N_TOKENS = 16  # (8 / 2) ** 2


def make(seed=0, label_dropout=None, **over):
    torch.manual_seed(seed)
    model = DiTTransformer2DModel(**dict(TINY, **over)).eval()
    if label_dropout is not None:  # diffusers' class-label dropout (CFG), active in training mode only
        for b in model.transformer_blocks:
            b.norm1.emb.class_embedder.dropout_prob = label_dropout
    return model


def inputs(batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(batch, 4, 8, 8, generator=g),
                timestep=torch.randint(0, 1000, (batch,), generator=g),
                class_labels=torch.randint(0, 10, (batch,), generator=g), return_dict=False)


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


def test_zero_B_is_the_base_model_for_every_depth():
    model, x = make(), inputs()
    ref = run(model, x)
    attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=1))
    assert isinstance(model.transformer_blocks[2].attn1.processor, DiTRSRProcessor)
    for T in range(0, 6):
        set_latent_steps(model, T)
        diff = (run(model, x) - ref).abs().max().item()
        assert diff <= 1e-6, (T, diff)
        assert [o.steps for o in collect_rsr_outputs(model)] == ([T] * 3 if T else [])


def test_zero_B_identity_holds_for_every_switch_in_training_mode():
    x = inputs()
    switches = [dict(), dict(base_every_step=True), dict(remodulate=False), dict(gate="linear"),
                dict(state="projected"), dict(top_k=2, num_experts=3), dict(shared_experts=True), dict(reinject=False)]
    model = make(label_dropout=0.0)  # hard routing draws Gumbel noise from the global RNG: keep labels fixed
    ref = run(model, x)
    for sw in switches:
        attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=3, **sw))
        model.train()
        with torch.no_grad():
            out = model(**x)[0]
        model.eval()
        detach_rsr(model)
        assert (out - ref).abs().max() <= 1e-6, sw


def test_soft_routing_identity_with_real_label_dropout_in_training_mode():
    """Soft routing draws no random numbers, so under the same seed the base and RSR drop the same labels."""
    x = inputs(batch=8)
    model = make(label_dropout=0.5)
    model.train()
    torch.manual_seed(11)
    with torch.no_grad():
        ref = model(**x)[0]
    attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=3, routing="soft"))
    model.train()
    torch.manual_seed(11)
    with torch.no_grad():
        out = model(**x)[0]
    assert (out - ref).abs().max() <= 1e-6


def test_gate_sees_the_blocks_own_embedding_even_with_label_dropout():
    """y is the timestep + class embedding the block itself used (captured, not recomputed with other drops)."""
    model = make(label_dropout=0.5)
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2))
    model.train()
    used, seen = {}, {}

    def recorder(store, i, pick):
        def hook(module, *args):  # returns None: only records (the first call; the final layer reuses block 0's)
            store.setdefault(i, pick(*args).detach().clone())
        return hook

    for i in ALL_LAYERS:
        model.transformer_blocks[i].norm1.emb.register_forward_hook(recorder(used, i, lambda a, out: out))
        rsr.gates[str(i)].register_forward_pre_hook(recorder(seen, i, lambda a: a[1]))
    torch.manual_seed(0)
    with torch.no_grad():
        model(**inputs(batch=8))
    for i in ALL_LAYERS:
        assert torch.equal(used[i], seen[i]), i
    assert not torch.equal(used[0], used[1]) or not torch.equal(used[1], used[2])  # diffusers drops per block


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
    """T = 1, M = 1: q/k/v = W x~ + E(x~) exactly where diffusers computes q/k/v (checks the wiring)."""
    model, x = make(), inputs()
    rsr = attach_rsr(model, RSRConfig(layers=[1], num_experts=1, latent_steps=1, rank=4))
    randomize(rsr)
    out = run(model, x)
    merged = make()
    e, attn = rsr.experts["1"], merged.transformer_blocks[1].attn1
    with torch.no_grad():
        for p, lin in enumerate((attn.to_q, attn.to_k, attn.to_v)):
            lin.weight += (e.A[0, :, p * 4:(p + 1) * 4] @ e.B[0, p]).T * e.scale
    torch.testing.assert_close(out, run(merged, x), atol=1e-5, rtol=1e-5)


def test_eval_batch_of_one_equals_same_sample_in_batch_of_eight_and_is_deterministic():
    model = make()
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
        assert a.routing.shape == (3, 8, N_TOKENS, 1)
        assert torch.equal(c.routing[:, 0], a.routing[:, 3])  # same routing alone as with batch-mates
    assert len(torch.cat([t.routing.flatten() for t in trace]).unique()) > 1  # routing is not trivial
    assert torch.equal(trace[0].timestep, x8["timestep"])


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
        model = make()  # label dropout on: checkpoint recomputation replays the same drops
        rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=3, random_depth=True,
                                          load_balance_weight=0.01))
        randomize(rsr)
        if ckpt:
            model.enable_gradient_checkpointing()
        model.train()
        loss, outs = _train_step(model, x)
        assert len(outs) == 3
        results.append((loss, {n: p.grad.clone() for n, p in rsr.named_parameters()}))
    assert torch.equal(results[0][0], results[1][0])
    for name, g in results[0][1].items():
        torch.testing.assert_close(g, results[1][1][name], atol=1e-6, rtol=1e-5)


def _processors(model):  # DiTTransformer2DModel has no attn_processors property
    return {name: m.processor for name, m in model.named_modules() if hasattr(m, "set_processor")}


def _hooks(model):
    return (len(model._forward_pre_hooks), [len(b._forward_pre_hooks) for b in model.transformer_blocks],
            [len(b.norm1.emb._forward_hooks) for b in model.transformer_blocks])


def test_detach_restores_original_processors_outputs_hooks_and_requires_grad():
    model, x = make(), inputs()
    model.transformer_blocks[0].norm1.linear.weight.requires_grad_(False)  # a user's own freezing survives
    originals = _processors(model)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    hooks = _hooks(model)
    ref = run(model, x)
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2))
    randomize(rsr)
    assert not torch.equal(run(model, x), ref)
    assert "rsr.experts.0.A" in model.state_dict()
    assert not any(".processor." in k for k in model.state_dict())  # one name per tensor
    detach_rsr(model)
    assert torch.equal(run(model, x), ref)
    assert all(_processors(model)[n] is p for n, p in originals.items())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert _hooks(model) == hooks
    assert not hasattr(model, "rsr")


def test_deep_copy_runs_its_own_rsr_and_detaches_independently():
    model, x = make(), inputs()
    base = run(model, x)
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2))
    randomize(rsr)
    out = run(model, x)
    collect_rsr_outputs(model)
    twin = copy.deepcopy(model)  # e.g. an EMA copy
    proc = twin.transformer_blocks[0].attn1.processor
    assert twin.rsr is not rsr and proc.rsr is twin.rsr
    assert all(h.__self__ is proc for h in twin.transformer_blocks[0].norm1.emb._forward_hooks.values())
    assert torch.equal(run(twin, x), out)
    assert len(collect_rsr_outputs(twin)) == 3 and collect_rsr_outputs(model) == []
    with torch.no_grad():
        twin.rsr.experts["0"].B.zero_()
    assert torch.equal(run(model, x), out)  # the original does not see the copy's weights
    detach_rsr(twin)
    assert torch.equal(run(twin, x), base) and torch.equal(run(model, x), out)


def test_save_load_round_trip_and_cross_backbone_refusal(tmp_path):
    model, x = make(), inputs()
    cfg = RSRConfig(layers=[0, 2], num_experts=3, latent_steps=2, rank=4)
    rsr = attach_rsr(model, cfg)
    randomize(rsr)
    out = run(model, x)
    path = save_rsr(model, tmp_path / "dit_adapter")
    fresh = make()
    base = run(fresh, x)
    load_rsr(fresh, path)
    assert fresh.rsr.backbone["name"] == "dit"
    assert torch.equal(run(fresh, x), out)
    detach_rsr(fresh)
    assert torch.equal(run(fresh, x), base)
    torch.manual_seed(0)
    sd3 = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=3, attention_head_dim=8,
                                num_attention_heads=2, joint_attention_dim=16, caption_projection_dim=16,
                                pooled_projection_dim=16, out_channels=4, pos_embed_max_size=16)
    with pytest.raises(ThinkpixError, match="saved for name='dit', this transformer has name='sd3'"):
        load_rsr(sd3, path)
    assert not hasattr(sd3, "rsr")
    attach_rsr(sd3, cfg)
    sd3_path = save_rsr(sd3, tmp_path / "sd3_adapter")
    with pytest.raises(ThinkpixError, match="saved for name='sd3', this transformer has name='dit'"):
        load_rsr(make(), sd3_path)


def test_attach_refuses_bad_requests():
    model = make()
    with pytest.raises(ThinkpixError, match="do not exist"):
        attach_rsr(model, RSRConfig(layers=[3]))
    model.transformer_blocks[1].attn1.set_processor(AttnProcessor())
    with pytest.raises(ThinkpixError, match="AttnProcessor2_0"):
        attach_rsr(model, RSRConfig(layers=[1]))
    assert not hasattr(model, "rsr")
    fused = make()
    fused.transformer_blocks[0].attn1.fuse_projections()
    fused.transformer_blocks[0].attn1.set_processor(FusedAttnProcessor2_0())
    with pytest.raises(ThinkpixError, match=r"found FusedAttnProcessor2_0; call .*attn1.set_processor"):
        attach_rsr(fused, RSRConfig(layers=[0]))
    attach_rsr(fused, RSRConfig(layers=[1]))  # other blocks are fine


def test_flop_estimate():
    from torch.utils.flop_counter import FlopCounterMode

    model, x = make(), inputs()
    base = estimate_forward_flops(model, 2, N_TOKENS)
    assert base["rsr"] == 0
    with FlopCounterMode(display=False) as counter:
        run(model, x)
    attention = 3 * 4 * 2 * N_TOKENS * N_TOKENS * 16  # QK^T + AV; torch's counter skips SDPA on CPU (some versions)
    assert base["total"] in (counter.get_total_flops(), counter.get_total_flops() + attention)  # exact
    cfg = RSRConfig(layers=ALL_LAYERS, latent_steps=2)
    f = [estimate_forward_flops(model, 2, N_TOKENS, cfg, steps=T)["rsr"] for T in (0, 1, 2, 3, 5)]
    assert f[0] == 0 and all(a < b for a, b in zip(f, f[1:]))
    m2 = estimate_forward_flops(model, 2, N_TOKENS, cfg)["total"]
    m16 = estimate_forward_flops(model, 2, N_TOKENS, cfg.replace(num_experts=16))["total"]
    assert m16 - m2 == 2 * cfg.gate_hidden * 14 * 2 * (2 * N_TOKENS) * 3  # only the gate's output layer grows


def test_bf16_base_on_cpu_keeps_fp32_adapter():
    model = make()
    rsr = attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2))
    randomize(rsr)
    model.to(torch.bfloat16)
    assert {p.dtype for p in rsr.parameters()} == {torch.float32}
    assert model.transformer_blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    x = dict(inputs(), hidden_states=inputs()["hidden_states"].bfloat16())
    out = run(model, x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
