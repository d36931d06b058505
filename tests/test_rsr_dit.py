"""RSR on diffusers' real DiTTransformer2DModel (class-conditional, adaLN-Zero self-attention): what is
DiT-specific. The properties every backbone shares are checked on DiT in test_rsr_backbones.py."""

import copy

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor, FusedAttnProcessor2_0
from rsr_backbones import N_IMAGE as N_TOKENS
from rsr_backbones import dit_inputs as inputs
from rsr_backbones import make_dit as make
from rsr_backbones import make_sd3, run

from thinkpix import RSRConfig, attach_rsr
from thinkpix.errors import ThinkpixError
from thinkpix.integrations import load_rsr, save_rsr
from thinkpix.integrations.dit import estimate_forward_flops

torch.set_num_threads(1)

ALL_LAYERS = [0, 1, 2]


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


def test_deep_copy_rebinds_the_embedding_capture_hook_to_the_copys_processor():
    model = make()
    attach_rsr(model, RSRConfig(layers=ALL_LAYERS, latent_steps=2))
    twin = copy.deepcopy(model)  # e.g. an EMA copy
    for original, block in zip(model.transformer_blocks, twin.transformer_blocks):
        proc = block.attn1.processor
        assert proc.rsr is twin.rsr and proc is not original.attn1.processor
        assert len(block.norm1.emb._forward_hooks) == 1
        assert all(h.__self__ is proc for h in block.norm1.emb._forward_hooks.values())


def test_cross_backbone_adapters_are_refused(tmp_path):
    cfg = RSRConfig(layers=[0, 2], num_experts=3, latent_steps=2, rank=4)
    model = make()
    attach_rsr(model, cfg)
    path = save_rsr(model, tmp_path / "dit_adapter")
    sd3 = make_sd3(num_attention_heads=2, joint_attention_dim=16, caption_projection_dim=16)  # same width as the DiT
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
