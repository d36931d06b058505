"""The backbone-agnostic RSR mechanism: config, experts (sparse vs dense), gate, routing, losses, recursion."""

import json
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from thinkpix.errors import ThinkpixError
from thinkpix.rsr import (BlockOps, Gate, LayerDims, LoRAExperts, RSRConfig, RSRModule, load_balance_loss,
                          route_tokens, router_z_loss, rsr_attention, stack_trace, total_aux_loss)
from thinkpix.rsr.routing import gumbel_noise

torch.set_num_threads(1)


# ----- config --------------------------------------------------------------------------------------
def test_rsr_does_not_import_diffusers():
    import subprocess

    code = "import sys, thinkpix.rsr; print('diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_config_defaults_follow_the_paper():
    c = RSRConfig(layers=[4, 8, 12])
    assert (c.num_experts, c.latent_steps, c.temperature, c.top_k, c.routing) == (2, 2, 5.0, 1, "hard")
    assert (c.base_every_step, c.remodulate, c.reinject, c.gate, c.state) == (False, True, True, "mlp", "attention")
    assert (c.random_depth, c.load_balance_weight, c.z_loss_weight) == (False, 0.0, 0.0)
    assert RSRConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("bad", [dict(layers=[]), dict(layers=[1, 1]), dict(layers=[0], top_k=3),
                                 dict(layers=[0], gate="attn"), dict(layers=[0], temperature=0),
                                 dict(layers=[0], routing="argmax"), dict(layers=[0], latent_steps=-1)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ThinkpixError, match="invalid RSR config"):
        RSRConfig(**bad)


def test_config_accepts_every_boundary_value_and_rejects_the_next_one():
    edge = dict(layers=[0], num_experts=1, latent_steps=0, rank=1, top_k=1, gate_hidden=1, grad_steps=1,
                temperature=1e-6, load_balance_weight=0.0, z_loss_weight=0.0)
    RSRConfig(**edge)  # every value at its lower limit is valid
    RSRConfig(**dict(edge, num_experts=3, top_k=3))  # top_k may equal the pool size
    for bad in (dict(num_experts=0), dict(latent_steps=-1), dict(rank=0), dict(top_k=0), dict(gate_hidden=0),
                dict(grad_steps=0), dict(temperature=0.0), dict(temperature=-1.0), dict(load_balance_weight=-1e-3),
                dict(z_loss_weight=-1e-3), dict(layers=[-1]), dict(state="after"), dict(expert_impl="fused")):
        with pytest.raises(ThinkpixError, match="invalid RSR config"):
            RSRConfig(**dict(edge, **bad))
    c = RSRConfig(layers=3)  # a single index is a one-element list
    assert c.layers == [3] and c.scaling == 1.0 and RSRConfig(layers=[0], rank=4, alpha=6).scaling == 1.5


def test_config_parse_types_aliases_and_booleans():
    c = RSRConfig.parse("layers=1,2,k=2,experts=3,tau=0.5,alpha=8,grad_steps=2,seed=7")
    assert (c.layers, c.top_k, c.num_experts, c.temperature, c.alpha, c.grad_steps, c.seed) == ([1, 2], 2, 3, 0.5, 8.0,
                                                                                                 2, 7)
    assert isinstance(c.temperature, float) and isinstance(c.grad_steps, int) and isinstance(c.alpha, float)
    for word, value in (("true", True), ("1", True), ("yes", True), ("on", True), ("false", False), ("0", False),
                        ("no", False), ("off", False), ("On", True)):
        assert RSRConfig.parse(f"layers=0,reinject={word}").reinject is value
    assert RSRConfig.parse("layers=0,alpha=none").alpha is None
    assert RSRConfig.parse("layers=0", latent_steps=4).latent_steps == 4  # keyword defaults
    assert RSRConfig.parse(" layers = 5 , 6 ,latent_steps=3").layers == [5, 6]
    for bad in ("layers=0,extra=1", "layers=0,latent_steps=two", "layers=0,tau=x", "layers=0,bogus=1",
                "latent_steps=2,3", "layers=0,tau=1=2"):
        with pytest.raises(ThinkpixError):
            RSRConfig.parse(bad)


def test_config_round_trips_and_reports_differences():
    a = RSRConfig(layers=[1, 2], latent_steps=2)
    b = a.replace(latent_steps=5, expert_impl="dense", num_experts=3)
    assert a.differences(b) == {"num_experts": (2, 3)}  # runtime fields ignored
    assert a.differences(b, ignore=()) == {"num_experts": (2, 3), "latent_steps": (2, 5),
                                           "expert_impl": ("sparse", "dense")}
    assert RSRConfig.from_dict(json.loads(b.to_json())) == b
    with pytest.raises(ThinkpixError, match="unknown RSR config field"):
        RSRConfig.from_dict(dict(a.to_dict(), colour=1))


def test_config_parse_cli_spec():
    c = RSRConfig.parse("layers=4,8,12,experts=5,latent_steps=5,gate=tokens_only,remodulate=false,grad_steps=none")
    assert c.layers == [4, 8, 12] and c.num_experts == 5 and c.latent_steps == 5
    assert c.gate == "tokens_only" and c.remodulate is False and c.grad_steps is None
    for bad in ("experts=2", "layers=1,foo=2", "layers=1,remodulate=maybe", "layers=x"):
        with pytest.raises(ThinkpixError):
            RSRConfig.parse(bad)


# ----- experts ---------------------------------------------------------------------------------------
def _bank(M, d=16, d_out=12, r=4, seed=0, scale=1.0):
    e = LoRAExperts(M, d, d_out, r, scale=scale, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        e.B.normal_(0, 0.5, generator=torch.Generator().manual_seed(seed + 1))
    return e


@pytest.mark.parametrize("scale", [1.0, 2.5])
@pytest.mark.parametrize("k", [1, 2])
def test_sparse_equals_dense_values_and_gradients(k, scale):
    M, n = 4, 37
    e = _bank(M, scale=scale)
    u = torch.randn(n, 16, requires_grad=True)
    logits = torch.randn(n, M, requires_grad=True)
    grads = []
    for dense in (False, True):
        route = route_tokens(logits, top_k=k, training=False)
        out = e(u, route.indices, route.weights, dense=dense)
        assert out.shape == (3, n, 12)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append((out.detach(), u.grad.clone(), logits.grad.clone(), e.A.grad.clone(), e.B.grad.clone()))
        for t in (u, logits, e.A, e.B):
            t.grad = None
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # and both equal the definition: sum over the selected experts of weight * scale * (u A_m) B_m
    route = route_tokens(logits.detach(), top_k=k, training=False)
    r = e.rank
    want = torch.zeros(3, n, 12)
    for i in range(n):
        for m, w in zip(route.indices[i].tolist(), route.weights[i].tolist()):
            for p in range(3):
                want[p, i] += w * scale * (u[i].detach() @ e.A[m, :, p * r:(p + 1) * r]) @ e.B[m, p]
    torch.testing.assert_close(grads[0][0], want.detach(), atol=1e-5, rtol=1e-5)


def test_empty_experts_still_get_a_zero_gradient():
    e = _bank(4)
    u = torch.randn(10, 16)
    idx = torch.zeros(10, 1, dtype=torch.long)  # every token to expert 0
    e(u, idx, torch.ones(10, 1)).sum().backward()
    assert e.A.grad is not None and e.B.grad is not None
    assert e.B.grad[1:].abs().sum() == 0 and e.B.grad[0].abs().sum() > 0


def test_zero_B_experts_output_exact_zero():
    e = LoRAExperts(3, 16, 12, 4)
    assert torch.count_nonzero(e(torch.randn(9, 16), torch.randint(0, 3, (9, 1)), torch.rand(9, 1))) == 0


def test_sparse_cost_follows_selected_experts_not_pool_size():
    n, d = 64, 32
    u = torch.randn(n, d)
    flops = {}
    for M in (2, 16):
        e = _bank(M, d=d, d_out=d)
        idx = torch.randint(0, M, (n, 1), generator=torch.Generator().manual_seed(0))
        with FlopCounterMode(display=False) as fc:
            e(u, idx, torch.ones(n, 1))
        flops[M] = fc.get_total_flops()
    assert flops[2] == flops[16] == n * e.flops_per_token()


# ----- gate and routing --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mlp", "tokens_only", "linear"])
def test_gate_starts_uniform_and_is_fp32(kind):
    g = Gate(kind, 16, 8, 3, hidden=10)
    logits = g(torch.randn(2, 5, 16, dtype=torch.bfloat16), torch.randn(2, 8, dtype=torch.bfloat16))
    assert logits.shape == (2, 5, 3) and logits.dtype == torch.float32
    assert torch.count_nonzero(logits) == 0
    assert (g.cond_in is None) == (kind == "tokens_only")


@pytest.mark.parametrize("kind", ["mlp", "tokens_only", "linear"])
def test_gate_init_and_flop_count(kind):
    """LeCun-normal input layers (std 1/sqrt(fan_in)); the linear gate starts with its y weights at zero too (a
    uniform start), the MLP gate keeps them (y shapes the hidden layer); FLOPs per token as counted by torch,
    plus one projection of y per sample."""
    d, d_cond, M, hidden, B, N = 256, 128, 4, 96, 2, 50
    g = Gate(kind, d, d_cond, M, hidden=hidden, generator=torch.Generator().manual_seed(0))
    if kind == "linear":  # token_in is its output layer: zero, like the y weights
        assert torch.count_nonzero(g.token_in.weight) == 0 and torch.count_nonzero(g.cond_in.weight) == 0
    else:
        assert g.token_in.weight.std().item() == pytest.approx(d ** -0.5, rel=0.05)
    if kind == "mlp":
        assert g.cond_in.weight.std().item() == pytest.approx(d_cond ** -0.5, rel=0.05)
    u, y = torch.randn(B, N, d), torch.randn(B, d_cond)
    with FlopCounterMode(display=False) as fc:
        g(u, y)
    per_sample = 0 if g.cond_in is None else 2 * d_cond * g.cond_in.out_features
    assert fc.get_total_flops() == B * N * g.flops_per_token() + B * per_sample


def test_eval_routing_is_argmax_without_noise_and_per_token():
    logits = torch.randn(50, 5)
    r1 = route_tokens(logits, training=False)
    r2 = route_tokens(logits, training=False)
    assert torch.equal(r1.indices, r2.indices) and torch.equal(r1.weights, r2.weights)
    assert torch.equal(r1.indices[:, 0], logits.argmax(-1))
    torch.testing.assert_close(r1.weights[:, 0], torch.softmax(logits / 5.0, -1).max(-1).values)
    assert torch.equal(route_tokens(logits[7:8], training=False).indices, r1.indices[7:8])  # no batch pooling


def test_training_routing_is_gumbel_hard_with_straight_through_gradient():
    torch.manual_seed(0)
    logits = torch.zeros(4000, 2, requires_grad=True)
    r = route_tokens(logits, training=True)
    frac = (r.indices == 1).float().mean().item()
    assert 0.45 < frac < 0.55  # Gumbel noise: uniform gate -> both experts chosen
    r.weights.sum().backward()
    assert logits.grad.abs().sum() > 0
    r1 = route_tokens(logits.detach().requires_grad_(), training=True, scale_by_prob=False)
    assert torch.all(r1.weights == 1.0) and r1.weights.requires_grad


def test_soft_routing_is_a_dense_mixture():
    r = route_tokens(torch.randn(6, 3), routing="soft")
    assert r.dense and r.indices.shape == (6, 3)
    torch.testing.assert_close(r.weights.sum(-1), torch.ones(6))


def test_aux_losses():
    probs = torch.full((8, 4), 0.25)
    idx = torch.arange(8).remainder(4).view(8, 1)
    assert load_balance_loss(probs, idx, 4).item() == pytest.approx(1.0)
    skewed = torch.zeros(8, 1, dtype=torch.long)
    assert load_balance_loss(probs, skewed, 4).item() == pytest.approx(1.0)  # P uniform
    p2 = torch.tensor([[0.7, 0.1, 0.1, 0.1]]).expand(8, 4)
    assert load_balance_loss(p2, skewed, 4).item() == pytest.approx(2.8)
    assert router_z_loss(torch.zeros(3, 4)).item() == pytest.approx(torch.log(torch.tensor(4.0)).item() ** 2)


# ----- the recursion on a toy single-head block ------------------------------------------------------
class ToyBlock(torch.nn.Module):
    """A minimal joint-attention block: frozen W_q/k/v for image and text, adaLN shift/scale from y."""

    def __init__(self, d=16):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.randn(d, d, generator=g) / 4)
                                         for k in ("q", "k", "v", "cq", "ck", "cv", "ada")})
        self.w.requires_grad_(False)

    def ops(self, c, y):
        cq, ck, cv = c @ self.w["cq"], c @ self.w["ck"], c @ self.w["cv"]
        shift, scale = (y @ self.w["ada"]).chunk(2, dim=-1)
        shift, scale = shift.repeat(1, 2), scale.repeat(1, 2)

        def attend(q, k, v, final):
            n = q.shape[1]
            qq = torch.cat([q, cq], 1) if final else q
            out = F.scaled_dot_product_attention(qq, torch.cat([k, ck], 1), torch.cat([v, cv], 1))
            return (out[:, :n], out[:, n:]) if final else (out, None)

        return BlockOps(base_qkv=lambda x: (x @ self.w["q"], x @ self.w["k"], x @ self.w["v"]), attend=attend,
                        modulate=lambda a: F.layer_norm(a, a.shape[-1:]) * (1 + scale[:, None]) + shift[:, None])

    def base(self, x, c):
        q, k, v = (torch.cat([x @ self.w[a], c @ self.w["c" + a]], 1) for a in "qkv")
        out = F.scaled_dot_product_attention(q, k, v)
        return out[:, : x.shape[1]], out[:, x.shape[1]:]


def _toy(cfg, seed=0):
    torch.manual_seed(seed)
    block = ToyBlock()
    rsr = RSRModule(cfg, {"0": LayerDims(16, 16, 16)}, {"name": "toy"})
    x, c, y = torch.randn(2, 6, 16), torch.randn(2, 3, 16), torch.randn(2, 16)
    return block, rsr, x, c, y


@pytest.mark.parametrize("T", [1, 2, 3, 5])
@pytest.mark.parametrize("switch", [{}, {"base_every_step": True}, {"remodulate": False}, {"reinject": False},
                                    {"gate": "tokens_only"}, {"routing": "soft"}])
def test_zero_B_final_step_is_the_base_attention(T, switch):
    block, rsr, x, c, y = _toy(RSRConfig(layers=[0], latent_steps=T, **switch))
    rsr.eval()
    a_x, a_c, out = rsr_attention(x, y, block.ops(c, y), rsr.gates["0"], rsr.experts["0"], rsr.config, T, False)
    b_x, b_c = block.base(x, c)
    assert (a_x - b_x).abs().max() <= 1e-6 and (a_c - b_c).abs().max() <= 1e-6
    assert out.steps == T and out.usage.shape == (T, 2) and out.deltas.shape == (T - 1,)


def test_experts_change_the_output_and_no_grad_early_steps():
    """grad_steps=1 keeps the values, keeps a gradient (the last step), and drops the early steps' part of it."""
    grads, outs = {}, {}
    for g in (1, None):
        block, rsr, x, c, y = _toy(RSRConfig(layers=[0], latent_steps=3, grad_steps=g))
        with torch.no_grad():
            rsr.experts["0"].B.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
            rsr.gates["0"].out.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(2))
        a_x, _, _ = rsr_attention(x, y, block.ops(c, y), rsr.gates["0"], rsr.experts["0"], rsr.config, 3, False)
        assert (a_x - block.base(x, c)[0]).abs().max() > 1e-3
        a_x.square().sum().backward()
        assert rsr.experts["0"].A.grad.abs().sum() > 0 and rsr.gates["0"].out.weight.grad.abs().sum() > 0
        outs[g], grads[g] = a_x.detach(), rsr.experts["0"].A.grad.clone()
    assert torch.equal(outs[1], outs[None])
    assert (grads[1] - grads[None]).abs().max() > 1e-4


def test_rsr_module_keeps_trainable_weights_fp32_and_follows_device_moves():
    _, rsr, *_ = _toy(RSRConfig(layers=[0]))
    rsr.to(torch.bfloat16)
    assert {p.dtype for p in rsr.parameters()} == {torch.float32}
    rsr.half()
    assert {p.dtype for p in rsr.parameters()} == {torch.float32}


def test_rsr_module_runtime_state():
    _, rsr, *_ = _toy(RSRConfig(layers=[0], latent_steps=4, random_depth=True))
    rsr.train()
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        rsr.begin_forward()
        seen.add(rsr.steps_for_forward())
    assert seen == {1, 2, 3, 4}
    rsr.eval()
    rsr.begin_forward()
    assert rsr.steps_for_forward() == 4
    rsr.set_latent_steps(0)
    assert rsr.steps_for_forward() == 0
    with pytest.raises(ThinkpixError):
        rsr.set_latent_steps(-1)


def test_gate_stays_fp32_under_autocast():
    g = Gate("mlp", 16, 8, 3, hidden=10)
    with torch.no_grad():
        g.out.weight.normal_()
    u, y = torch.randn(2, 5, 16), torch.randn(2, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = g(u, y)
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, g(u, y), atol=0, rtol=0)


def test_step_statistics_are_what_they_say():
    """usage: fraction of assignments per expert (= the traced routing); entropy: mean per-token entropy of
    softmax(g / tau); deltas: ||a_x^t - a_x^{t-1}|| / ||a_x^{t-1}||; aux: the weighted losses of the steps."""
    cfg = RSRConfig(layers=[0], num_experts=3, latent_steps=3, load_balance_weight=0.3, z_loss_weight=0.01)
    block, rsr, x, c, y = _toy(cfg)
    with torch.no_grad():
        rsr.experts["0"].B.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
        rsr.gates["0"].out.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(2))
    gate = rsr.gates["0"]
    _, _, out = rsr_attention(x, y, block.ops(c, y), gate, rsr.experts["0"], cfg, 3, False, trace=True,
                              trace_states=True)
    assert out.routing.shape == (3, 2, 6, 1) and out.states.shape == (3, 2, 6, 16)
    for t in range(3):
        counts = torch.bincount(out.routing[t].long().flatten(), minlength=3).float()
        torch.testing.assert_close(out.usage[t], counts / counts.sum())
    logits = gate(x, y).flatten(0, 1)  # step 1 routes x~ itself
    p = torch.softmax(logits / cfg.temperature, -1)
    torch.testing.assert_close(out.entropy[0], -(p * p.log()).sum(-1).mean())
    assert 0 < out.entropy.min() and out.entropy.max() <= torch.log(torch.tensor(3.0))
    a_x = out.states - x  # state = a_x + x~ (re-injection, the attention output as state)
    for t in (1, 2):
        torch.testing.assert_close(out.deltas[t - 1], (a_x[t] - a_x[t - 1]).norm() / a_x[t - 1].norm())
    one = rsr_attention(x, y, block.ops(c, y), gate, rsr.experts["0"], cfg, 1, False)[2]  # T = 1: step 1 only
    idx = p.argmax(-1, keepdim=True)
    want = 0.3 * load_balance_loss(p, idx, 3) + 0.01 * router_z_loss(logits)
    torch.testing.assert_close(one.aux_loss, want)
    torch.testing.assert_close(one.load_balance_loss, load_balance_loss(p, idx, 3))
    summary = out.summary()
    assert summary["steps"] == 3 and len(summary["deltas"]) == 2 and sum(summary["usage"]) == pytest.approx(1.0)
    assert summary["entropy"] == pytest.approx(float(out.entropy.mean()))
    assert summary["load_balance_loss"] == pytest.approx(out.load_balance_loss.detach().item())


def test_soft_routing_usage_is_the_mean_probability():
    cfg = RSRConfig(layers=[0], num_experts=3, latent_steps=1, routing="soft")
    block, rsr, x, c, y = _toy(cfg)
    with torch.no_grad():
        rsr.gates["0"].out.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(2))
    out = rsr_attention(x, y, block.ops(c, y), rsr.gates["0"], rsr.experts["0"], cfg, 1, False)[2]
    p = torch.softmax(rsr.gates["0"](x, y).flatten(0, 1) / cfg.temperature, -1)
    torch.testing.assert_close(out.usage[0], p.mean(0))
    assert out.aux_loss.item() == 0.0 and out.load_balance_loss is None and out.z_loss is None


# ----- what the first mutation run (benchmarks/results/mutation_rsr.json) showed untested ---------------
def test_training_routing_samples_experts_with_the_gate_probabilities():
    """Gumbel-max: argmax(g + G) picks expert m with probability softmax(g)_m, whatever tau; the selected
    weight is softmax((g + G) / tau) at the winner, G the same noise (replayed from the seed)."""
    g = torch.tensor([[0.0, 1.0, -0.5]]).expand(20000, 3).contiguous()
    torch.manual_seed(0)
    r = route_tokens(g, temperature=5.0, training=True)
    freq = torch.bincount(r.indices.flatten(), minlength=3).float() / 20000
    torch.testing.assert_close(freq, torch.softmax(g[0], -1), atol=0.015, rtol=0)
    torch.manual_seed(0)
    noise = gumbel_noise(g)
    want = torch.softmax((g + noise) / 5.0, -1)
    assert torch.equal(r.indices[:, 0], want.argmax(-1))
    torch.testing.assert_close(r.weights[:, 0], want.gather(-1, r.indices)[:, 0])
    torch.manual_seed(1)
    r2 = route_tokens(g[:6], top_k=2, temperature=5.0, training=True)
    torch.manual_seed(1)
    want2 = torch.softmax((g[:6] + gumbel_noise(g[:6])) / 5.0, -1).topk(2, -1)
    assert torch.equal(r2.indices, want2.indices) and torch.equal(r2.weights, want2.values)


def test_expert_impl_decides_the_cost_not_the_value():
    """`sparse` computes only the selected expert of each token, `dense` all M (same values)."""
    flops, outs = {}, {}
    for impl in ("sparse", "dense"):
        cfg = RSRConfig(layers=[0], num_experts=4, latent_steps=2, expert_impl=impl)
        block, rsr, x, c, y = _toy(cfg)
        with torch.no_grad():
            rsr.experts["0"].B.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
        with FlopCounterMode(display=False) as fc:
            outs[impl] = rsr_attention(x, y, block.ops(c, y), rsr.gates["0"], rsr.experts["0"], cfg, 2, False)[0]
        flops[impl] = fc.get_total_flops()
    per_step = x.shape[0] * x.shape[1] * rsr.experts["0"].flops_per_token()  # one expert on every token
    assert flops["dense"] - flops["sparse"] >= 2 * 3 * per_step  # 3 more experts at each of 2 steps
    torch.testing.assert_close(outs["sparse"], outs["dense"], atol=1e-5, rtol=1e-5)


def test_deltas_are_relative_also_for_small_states():
    cfg = RSRConfig(layers=[0], num_experts=2, latent_steps=2)
    block, rsr, x, c, y = _toy(cfg)
    with torch.no_grad():
        rsr.experts["0"].B.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
        for w in block.w.values():
            w.mul_(0.01)  # attention outputs with norm << 1
    _, _, out = rsr_attention(x * 0.01, y, block.ops(c * 0.01, y), rsr.gates["0"], rsr.experts["0"], cfg, 2, False,
                              trace=True, trace_states=True)
    a_x = out.states - x * 0.01
    assert a_x[0].norm() < 0.1
    torch.testing.assert_close(out.deltas[0], (a_x[1] - a_x[0]).norm() / a_x[0].norm())


def test_trace_keeps_every_pick_of_top_k():
    cfg = RSRConfig(layers=[0], num_experts=3, top_k=2, latent_steps=2)
    block, rsr, x, c, y = _toy(cfg)
    out = rsr_attention(x, y, block.ops(c, y), rsr.gates["0"], rsr.experts["0"], cfg, 2, False, trace=True)[2]
    assert out.routing.shape == (2, 2, 6, 2) and torch.all(out.routing[..., 0] != out.routing[..., 1])


def test_layer_dims_and_shared_pools():
    dims = LayerDims(16, 16, 8)
    with pytest.raises(AttributeError):
        dims.d_model = 32  # frozen: the widths an adapter was built for do not change under it
    assert {dims: 1}[LayerDims(16, 16, 8)] == 1
    cfg = RSRConfig(layers=[0, 1], shared_experts=True)
    RSRModule(cfg, {"0": dims, "1": LayerDims(16, 16, 4)}, {"name": "toy"})  # gates may differ in y width
    with pytest.raises(ThinkpixError, match="same widths"):
        RSRModule(cfg, {"0": dims, "1": LayerDims(32, 32, 8)}, {"name": "toy"})


def test_random_depth_samples_every_depth_from_two_on():
    _, rsr, *_ = _toy(RSRConfig(layers=[0], latent_steps=2, random_depth=True))
    rsr.train()
    torch.manual_seed(0)
    seen = set()
    for _ in range(30):
        rsr.begin_forward()
        seen.add(rsr.steps_for_forward())
    assert seen == {1, 2}


def test_total_aux_loss_and_trace_stacking():
    cfg = RSRConfig(layers=[0], num_experts=2, latent_steps=2, load_balance_weight=0.5, z_loss_weight=0.1)
    block, rsr, x, c, y = _toy(cfg)
    outs = [rsr_attention(x, y, block.ops(c, y), rsr.gates["0"], rsr.experts["0"], cfg, 2, False, trace=True)[2]
            for _ in range(2)]
    for i, o in enumerate(outs):
        o.layer = f"transformer_blocks.{i}"
    assert total_aux_loss([]) == 0.0
    torch.testing.assert_close(total_aux_loss(outs), outs[0].aux_loss + outs[1].aux_loss)
    s = outs[0].summary()
    assert s["z_loss"] == pytest.approx(outs[0].z_loss.detach().item()) and "load_balance_loss" in s
    stacked = stack_trace(outs + outs)  # two forwards over two layers
    assert stacked["layers"] == ["transformer_blocks.0", "transformer_blocks.1"]
    assert stacked["routing"].shape == (2, 2, 2, 2, 6, 1)
    for bad in (outs + outs[:1], [outs[1], outs[0], outs[0], outs[1]]):  # not whole forwards; layers out of order
        with pytest.raises(ValueError, match="whole number of forwards"):
            stack_trace(bad)
