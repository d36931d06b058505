"""The paper's SFT baseline is parameter-matched exactly: the rank is the one whose LoRA parameter count is
closest to RSR's, and both counts are what a hand count of the tensors gives."""

import pytest
import torch
from rsr_backbones import BACKBONES

from thinkpix.integrations.methods import attach_adapter
from thinkpix.training.config import FinetuneConfig

torch.set_num_threads(1)


def rsr_count_by_hand(model, bb, layers, M, r, hidden=64):
    """Per RSR block: M experts of A (D x 3r) and B (3 x r x D), and an MLP gate: W_u (D -> h, bias), W_y (Dy -> h,
    no bias), W_out (h -> M, bias)."""
    total = 0
    for i in layers:
        block = model.transformer_blocks[i]
        D = getattr(block, bb.attn).to_q.in_features
        Dy = block.norm1.linear.in_features
        total += M * (D * 3 * r + 3 * r * D) + (D * hidden + hidden) + Dy * hidden + (hidden * M + M)
    return total


@pytest.mark.parametrize("name", ["sd3", "dit", "flux"])
@pytest.mark.parametrize("M,r", [(2, 8), (5, 4)])
def test_lora_rank_and_count_match_rsr_exactly(name, M, r):
    bb = BACKBONES[name]
    layers = bb.layers[:2]
    spec = f"layers={','.join(map(str, layers))},experts={M},latent_steps=2,rank={r}"
    rsr_model, lora_model = bb.make(), bb.make()
    rsr = attach_adapter(rsr_model, FinetuneConfig(method="rsr", rsr=spec))
    assert rsr.num_parameters == rsr_count_by_hand(rsr_model, bb, layers, M, r) == rsr_model.rsr.num_parameters()
    lora = attach_adapter(lora_model, FinetuneConfig(method="lora", rsr=spec))
    # by hand: q, k and v of each block's image attention, each rank x (in + out) features
    frozen = [getattr(getattr(lora_model.transformer_blocks[i], bb.attn), p).base_layer.weight
              for i in layers for p in ("to_q", "to_k", "to_v")]
    per_rank = sum(w.shape[0] + w.shape[1] for w in frozen)
    best = min(range(1, 10 * r * M), key=lambda k: abs(k * per_rank - rsr.num_parameters))
    assert lora_model._thinkpix_lora["rank"] == best
    assert lora.num_parameters == best * per_rank
    trainable = sum(p.numel() for p in lora_model.parameters() if p.requires_grad)
    assert trainable == lora.num_parameters  # and nothing else trains
