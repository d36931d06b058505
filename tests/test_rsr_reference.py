"""What the intermediate latent steps compute, checked against an independent re-statement of the
paper's pseudocode (tests/rsr_reference.py) on tiny real SD3, SD3.5-style, DiT and FLUX blocks, with
non-zero experts, for T = 1..4 and every switch; plus the behaviours the recursion must have."""

import pytest
import torch
from rsr_backbones import BACKBONES
from rsr_reference import ReferenceBlock, capture, rsr_block

from thinkpix import RSRConfig, attach_rsr
from thinkpix.integrations import set_latent_steps

torch.set_num_threads(1)

# (backbone, RSR block): SD3 middle and last (context_pre_only) blocks, the SD3.5 dual-attention block
# (9-chunk adaLN, RMS q/k norms), a DiT block, the last FLUX double-stream block (rotary, text first)
CASES = {"sd3": ("sd3", 1), "sd3_last": ("sd3", 2), "sd35": ("sd35", 0), "dit": ("dit", 1), "flux": ("flux", 1)}
SWITCHES = {
    "paper": {},
    "no_remodulate": dict(remodulate=False),
    "no_reinject": dict(reinject=False),
    "projected_state": dict(state="projected"),
    "base_every_step": dict(base_every_step=True),
    "lora_scale": dict(alpha=6.0),  # scale 1.5
    "top2_of_3": dict(top_k=2, num_experts=3, alpha=2.0),
    "soft": dict(routing="soft", num_experts=3),
    "no_prob_scale": dict(scale_by_prob=False, num_experts=3),
    "tokens_only_gate": dict(gate="tokens_only"),
    "linear_gate": dict(gate="linear"),
    "dense_impl": dict(expert_impl="dense", alpha=12.0),
    "grad_steps": dict(grad_steps=1),
    "final_refined": dict(final_input="refined"),
    "final_gated": dict(final_input="gated"),
    "final_gated_every_step": dict(final_input="gated", base_every_step=True),
}
# The whole block as the loop body exists for SD3 joint blocks (not SD3.5 dual-attention, DiT or FLUX)
BLOCK_SWITCHES = {
    "block_body": dict(loop_body="block"),
    "block_body_every_step": dict(loop_body="block", base_every_step=True),
    "block_body_refined": dict(loop_body="block", final_input="refined"),
}
TOL = dict(atol=2e-5, rtol=1e-4)


def perturb(rsr, seed=3):
    """A trained-looking adapter: non-zero B, and every gate weight moved so routing depends on u and y."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for e in rsr.experts.values():
            e.B.normal_(0, 0.2, generator=g)
        for gate in rsr.gates.values():
            for p in gate.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
        for mix in rsr.final_mix.values():  # final_input="gated": a blend that has moved off zero
            mix.normal_(0, 0.5, generator=g)


def setup(case, T=1, seed=3, **switch):
    name, layer = CASES[case]
    bb = BACKBONES[name]
    model = bb.make()
    rsr = attach_rsr(model, RSRConfig(layers=[layer], rank=4, latent_steps=T, **switch))
    perturb(rsr, seed)
    return bb, model, rsr, layer, bb.inputs()


def reference(bb, model, rsr, layer, seen, T):
    block = model.transformer_blocks[layer]
    ref = ReferenceBlock(bb.name, getattr(block, bb.attn), block.norm1,
                         seen["x_tilde"], seen["c_tilde"], seen["y"], seen["rotary"], block=block, x=seen.get("x"))
    e, key = rsr.experts[str(layer)], str(layer)
    mix = rsr.final_mix[key] if key in rsr.final_mix else None
    return rsr_block(ref, rsr.gates[key], e.A, e.B, rsr.config, T, mix=mix)


def as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("switch,case", [(s, c) for s in SWITCHES for c in CASES]
                         + [(s, c) for s in BLOCK_SWITCHES for c in ("sd3", "sd3_last")])
def test_real_block_equals_the_paper_reference_for_every_depth(case, switch):
    bb, model, rsr, layer, x = setup(case, **{**SWITCHES, **BLOCK_SWITCHES}[switch])
    refs = []
    for T in range(1, 5):
        set_latent_steps(model, T)
        seen = capture(model, layer, bb.attn, x)
        with torch.no_grad():
            ref = as_tuple(reference(bb, model, rsr, layer, seen, T))
        real = as_tuple(seen["output"])
        assert len(real) == len(ref)
        for a, b in zip(real, ref):
            torch.testing.assert_close(a, b, **TOL, msg=lambda m: f"{case} {switch} T={T}: {m}")
        refs.append(ref[0])
    # the reference itself is not degenerate: every extra step changes the image stream (the block body
    # contracts more on these tiny random blocks: its steps move the output by 5e-6 to 1e-4, float noise is ~5e-8)
    floor = 1e-6 if switch in BLOCK_SWITCHES else 1e-4
    for T in range(1, 4):
        assert (refs[T] - refs[T - 1]).abs().max() > floor, (case, switch, T)


def _grads(rsr, loss_fn):
    params = dict(rsr.named_parameters())
    grads = torch.autograd.grad(loss_fn(), list(params.values()), allow_unused=True)
    return {k: (torch.zeros_like(p) if g is None else g) for (k, p), g in zip(params.items(), grads)}


@pytest.mark.parametrize("case", ["sd35", "dit", "flux"])
def test_grad_steps_removes_the_gradient_of_exactly_the_early_steps(case):
    """T = 3: gradients of every adapter tensor equal the reference's, in which the state after each
    step before the last `grad_steps` is detached; and each removed step did contribute."""
    T = 3
    results = {}
    for g in (None, 3, 2, 1):
        bb, model, rsr, layer, x = setup(case, T=T, grad_steps=g)

        def loss(outs):
            return sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs)

        seen = capture(model, layer, bb.attn, x, grad=True)
        real = _grads(rsr, lambda: loss(as_tuple(seen["output"])))
        ref = _grads(rsr, lambda: loss(as_tuple(reference(bb, model, rsr, layer, seen, T))))
        for k in real:
            torch.testing.assert_close(real[k], ref[k], atol=1e-5, rtol=1e-4, msg=lambda m: f"{case} g={g} {k}: {m}")
        results[g] = real
    for k in results[None]:
        torch.testing.assert_close(results[3][k], results[None][k], atol=1e-6, rtol=1e-6)  # all 3 steps: no change
    for more, fewer in ((None, 2), (2, 1)):  # dropping one more early step changes the gradient
        assert max((results[more][k] - results[fewer][k]).abs().max() for k in results[None]) > 1e-5, (more, fewer)


@pytest.mark.parametrize("case", list(BACKBONES))
def test_every_extra_latent_step_changes_the_model_output(case):
    bb = BACKBONES[case]
    model, x = bb.make(), bb.inputs()
    rsr = attach_rsr(model, RSRConfig(layers=bb.layers, rank=4, latent_steps=1))
    perturb(rsr)
    outs = []
    for T in (1, 2, 3):
        set_latent_steps(model, T)
        with torch.no_grad():
            outs.append(model(**x)[0])
    assert (outs[1] - outs[0]).abs().max() > 1e-3 and (outs[2] - outs[1]).abs().max() > 1e-3


@pytest.mark.parametrize("case", ["sd3", "flux"])
def test_sparse_equals_dense_with_a_lora_scale(case):
    bb = BACKBONES[case]
    out = {}
    for impl in ("sparse", "dense"):
        model, x = bb.make(), bb.inputs()
        rsr = attach_rsr(model, RSRConfig(layers=bb.layers, num_experts=3, top_k=2, rank=4, alpha=10.0,
                                          latent_steps=3, expert_impl=impl))
        perturb(rsr)
        with torch.no_grad():
            out[impl] = model(**x)[0]
    unscaled = bb.make()
    rsr = attach_rsr(unscaled, RSRConfig(layers=bb.layers, num_experts=3, top_k=2, rank=4, latent_steps=3))
    perturb(rsr)
    with torch.no_grad():
        assert (unscaled(**x)[0] - out["sparse"]).abs().max() > 1e-3  # the scale (2.5) matters here
    torch.testing.assert_close(out["sparse"], out["dense"], atol=1e-5, rtol=1e-5)
