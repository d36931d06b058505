"""Instruments that say whether RSR's routing learns and its recursion is used.

`probe_rsr(model, vset)` runs the model with its RSR adapter on a fixed probe batch (the first n
samples of the validation set, no gradient, eval mode: argmax routing, no Gumbel noise), once per
diffusion-timestep bin (every sample at the bin's centre), and returns an explicit `ProbeReport`:

- routing entropy (nats, of softmax(g / tau)) and expert usage (argmax shares) per RSR layer,
  timestep bin and latent step;
- the experts' updates on the same tokens: E_m(U) for every expert m on the tokens U that reach the
  block's first latent step (x~ of every probe sample and bin), their norms (RMS per token) and the
  cosine similarity between every pair of experts (1: interchangeable experts);
- the Frobenius norm of every expert's B (zero at initialisation);
- recursion use: ||h_T - h_1|| / ||h_1||, the relative change of each RSR block's image-token output
  h between the adapter run at its trained T and at T = 1 (the intermediate steps skipped), and
  the same for the model's velocity output; beside it the adapter's total effect at T, relative to the
  base (T = 0), so that a small recursion use can be told from a small adapter.

The gradient norm reaching the gates is measured by the trainer (per optimiser group, before
clipping), not here: it needs the training step's backward.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from .. import flow
from ..integrations.attach import backbone_of, get_rsr
from .heldout import ValidationSet, model_inputs


@dataclass
class LayerProbe:
    layer: str  # block index
    entropy: list[list[float]]  # [bin][latent step], nats
    usage: list[list[list[float]]]  # [bin][latent step][expert], share of tokens (argmax)
    update_rms: list[float]  # [expert] RMS over tokens of ||E_m(u)|| (q, k, v together)
    update_cosine: list[float | None]  # [pair i < j] cosine between E_i(U) and E_j(U) (None: an update is 0)
    b_norms: list[float]  # [expert] ||B_m|| (Frobenius, q/k/v together)
    recursion_use: float  # ||h_T - h_1|| / ||h_1|| of this block's output, over all bins
    adapter_effect: float  # ||h_T - h_0|| / ||h_0||: what the adapter changes at all


@dataclass
class ProbeReport:
    latent_steps: int  # the trained T the probe ran at
    num_experts: int
    bins: list[float]  # timestep of each bin (its centre)
    layers: list[LayerProbe] = field(default_factory=list)
    output_recursion_use: float = 0.0  # ||v_T - v_1|| / ||v_1|| on the velocity
    output_adapter_effect: float = 0.0  # ||v_T - v_0|| / ||v_0||

    def summary(self) -> dict:
        """Flat numbers for the metrics log: means over layers (and bins or steps) plus the full report."""
        L = self.layers
        mean = lambda xs: float(sum(xs) / len(xs)) if xs else 0.0  # noqa: E731
        by_step = [mean([lp.entropy[b][s] for lp in L for b in range(len(self.bins))]) for s in range(self.latent_steps)]
        by_bin = [mean([x for lp in L for x in lp.entropy[b]]) for b in range(len(self.bins))]
        cosines = [c for lp in L for c in lp.update_cosine if c is not None]
        return {
            "probe_entropy_by_step": by_step,
            "probe_entropy_by_bin": by_bin,
            "probe_entropy_ratio": mean(by_step) / math.log(self.num_experts) if self.num_experts > 1 else 0.0,
            "probe_usage_by_step": [[mean([lp.usage[b][s][m] for lp in L for b in range(len(self.bins))])
                                     for m in range(self.num_experts)] for s in range(self.latent_steps)],
            "probe_update_cosine": mean(cosines) if cosines else None,
            "probe_b_norm": mean([x for lp in L for x in lp.b_norms]),
            "recursion_use": mean([lp.recursion_use for lp in L]),
            "adapter_effect": mean([lp.adapter_effect for lp in L]),
            "output_recursion_use": self.output_recursion_use,
            "probe": asdict(self),
        }


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float | None:
    na, nb = float(a.double().norm()), float(b.double().norm())
    return float(a.double() @ b.double()) / (na * nb) if na > 0 and nb > 0 else None


def _relative(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """||a - b|| / ||b|| over lists of tensors (all bins together)."""
    num = sum(float((x.double() - y.double()).pow(2).sum()) for x, y in zip(a, b))
    den = sum(float(y.double().pow(2).sum()) for y in b)
    return math.sqrt(num / den) if den > 0 else 0.0


@torch.no_grad()
def probe_rsr(model, vset: ValidationSet, samples: int = 8, bins: int = 4) -> ProbeReport:
    """Measure the RSR adapter attached to `model.transformer` on the first `samples` of `vset`."""
    transformer = model.transformer
    rsr = get_rsr(transformer)
    cfg, T = rsr.config, rsr.latent_steps
    backbone = backbone_of(transformer)
    keys = [str(i) for i in sorted(cfg.layers)]
    outputs: dict[tuple[int, str], list[torch.Tensor]] = {}  # (depth, layer) -> block outputs per bin
    tokens: dict[str, list[torch.Tensor]] = {k: [] for k in keys}  # layer -> x~ per bin (trained depth)
    depth = {"now": T}

    def block_hook(key):
        def hook(module, args, out):
            h = out[-1] if isinstance(out, tuple) else out  # the image stream, (B, N, D)
            outputs.setdefault((depth["now"], key), []).append(h.detach().float().cpu())
        return hook

    def attention_hook(key):
        def hook(module, args, kwargs):
            if depth["now"] == T:
                x = args[0] if args else kwargs["hidden_states"]  # x~: the block's modulated image tokens
                tokens[key].append(x.detach().float().flatten(0, 1))
        return hook

    handles = []
    for key in keys:
        block = transformer.transformer_blocks[int(key)]
        handles.append(block.register_forward_hook(block_hook(key)))
        handles.append(getattr(block, backbone.ATTENTION).register_forward_pre_hook(attention_hook(key), with_kwargs=True))
    was_training = transformer.training
    model.eval()
    centres = [(b + 0.5) / bins for b in range(bins)]
    report = ProbeReport(latent_steps=T, num_experts=cfg.num_experts, bins=centres)
    routing: dict[str, list] = {k: [] for k in keys}  # layer -> [bin] RSROutput
    velocities: dict[int, list[torch.Tensor]] = {}
    x0, noise, _, velocity = model_inputs(model, vset, slice(0, samples))
    depths = sorted({T, 1, 0}, reverse=True) if T > 0 else [0]
    try:
        for c in centres:
            t = torch.full((x0.shape[0],), c, device=x0.device)  # (n,)
            x_t = flow.interpolate(x0, noise, t)
            for d in depths:
                depth["now"] = d
                rsr.set_latent_steps(d)
                velocities.setdefault(d, []).append(velocity(x_t, t).float().cpu())
                if d == T:
                    for out in rsr.collect():
                        routing[out.layer[len(rsr.prefix):]].append(out)
                rsr.collect()
    finally:
        rsr.set_latent_steps(T)
        for h in handles:
            h.remove()
        model.train(was_training)
    for key in keys:
        experts = rsr.experts["shared" if cfg.shared_experts else key]
        U = torch.cat(tokens[key]) if tokens[key] else torch.zeros(0, experts.d_in)  # (n_tokens, D)
        eye = torch.eye(cfg.num_experts, device=U.device)
        updates = [experts.mixture(U, eye[m].expand(U.shape[0], -1)).flatten() for m in range(cfg.num_experts)]
        n_tok = max(1, U.shape[0])
        cos = [_cosine(updates[i], updates[j]) for i in range(len(updates)) for j in range(i + 1, len(updates))]
        h1 = outputs.get((1, key), [])
        report.layers.append(LayerProbe(
            layer=key,
            entropy=[o.entropy.float().tolist() for o in routing[key]],
            usage=[o.usage.float().tolist() for o in routing[key]],
            update_rms=[float(u.norm()) / math.sqrt(n_tok) for u in updates],
            update_cosine=cos,
            b_norms=[float(b.norm()) for b in experts.B],
            recursion_use=_relative(outputs.get((T, key), []), h1) if T > 1 else 0.0,
            adapter_effect=_relative(outputs.get((T, key), []), outputs.get((0, key), [])) if T > 0 else 0.0,
        ))
    if T > 1:
        report.output_recursion_use = _relative(velocities[T], velocities[1])
    if T > 0:
        report.output_adapter_effect = _relative(velocities[T], velocities[0])
    return report
