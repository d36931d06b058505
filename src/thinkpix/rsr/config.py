"""`RSRConfig`: one dataclass threaded through the whole mechanism.

Every default follows the paper (Sun et al. 2026, "The Thinking Pixel", summarised in docs/paper.md);
every place where the paper is silent is a field, so each of our choices can be ablated. See docs/rsr.md
for the mapping.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field

from thinkpix.deprecation import deprecated
from thinkpix.errors import ThinkpixError

GATES = ("mlp", "tokens_only", "linear")
ROUTINGS = ("hard", "soft")
STATES = ("attention", "projected")
EXPERT_INITS = ("random", "orthogonal")
EXPERT_IMPLS = ("sparse", "dense")
FINAL_INPUTS = ("x0", "refined", "gated")
LOOP_BODIES = ("attention", "block")

# Fields that may differ between a saved adapter and the module it is loaded into: they change
# neither the parameters nor what was learned (inference depth, and which kernel computes experts).
RUNTIME_FIELDS = ("latent_steps", "expert_impl")

# Bounds that protect the machine, the same in training and at inference (`--latent-steps`): field -> (maximum,
# why). A rank above a layer's own width is refused too, when RSR is attached (`RSRModule`).
BOUNDS = {
    "latent_steps": (64, "every latent step reruns the block's attention (the paper uses T = 2-4; inference caps "
                         "--latent-steps at 64 too)"),
    "rank": (4096, "above the widest projection of any supported base (FLUX: 3072), where a rank adds parameters, "
                   "not expressiveness"),
    "num_experts": (256, "the gate, the expert weights and the routing statistics grow with M"),
    "gate_hidden": (65_536, "the gate's hidden width; its memory grows with it"),
    "seed": (2**32 - 1, "seeds feed torch and NumPy generators"),
}

# Named readings of RSR (`RSRConfig.preset`, `--rsr preset=NAME,layers=...`): the RSRConfig fields each sets.
# What each does on the recursion ladder: docs/lab/recursion_ladder.md and docs/rsr.md.
PRESETS = {
    "paper": {},  # the paper's reading: experts alone at intermediate steps, W(x~) at the final step
    # W(u) + experts at every step and the final W on the refined state: the reading whose loop carried the
    # most work on the ladder (trained in from scratch); it does not start exactly at a base model
    "refined-every-step": {"base_every_step": True, "final_input": "refined"},
    # W(u) + experts at every step, the final W on x~ + g (u_T - x~) with g = 0 at init: starts exactly at
    # the base (for adapters on a frozen base) while the loop can reach the output through the full-rank W
    "gated-every-step": {"base_every_step": True, "final_input": "gated"},
}

# Short names accepted by `RSRConfig.parse` (the CLI's `--rsr layers=4,8,12,experts=2,latent_steps=2`).
ALIASES = {"experts": "num_experts", "k": "top_k", "tau": "temperature"}
# Old spellings, still read, each with a deprecation warning (`steps` is the sampler's word elsewhere).
DEPRECATED = {"steps": "latent_steps"}


@dataclass
class RSRConfig:
    """Configuration of Recursive Sparse Reasoning on some blocks of a diffusion transformer.

    Paper settings (defaults): experts on the image q/k/v, Gumbel-Softmax hard top-1 at tau 5.0,
    frozen base projection only at the final latent step, re-modulation with the block's own
    adaLN between steps, re-injection of the modulated input x~, gate on [token ; proj(y)].
    """

    layers: list[int]  # indices of the transformer blocks that get RSR
    num_experts: int = 2  # M: LoRA experts per pool
    latent_steps: int = 2  # T: latent "thinking" steps (max depth if random_depth); 0 = base model
    rank: int = 8  # r: LoRA rank of each expert (per q/k/v projection)
    alpha: float | None = None  # LoRA scaling alpha / rank; None means scale 1.0
    temperature: float = 5.0  # Gumbel-Softmax tau (fixed, as in the paper); the start value when annealed
    temperature_end: float | None = None  # anneal tau geometrically to this over training (None: fixed tau)
    top_k: int = 1  # experts per token (paper: 1, winner-takes-all)
    routing: str = "hard"  # "hard": Gumbel top-k straight-through; "soft": dense softmax mixture
    scale_by_prob: bool = True  # selected expert output scaled by its (Gumbel-)softmax probability
    gate: str = "mlp"  # "mlp" on [u ; proj(y)] | "tokens_only" (MLP on u) | "linear" on [u ; y]
    gate_hidden: int = 64  # hidden width of the MLP gate
    base_every_step: bool = False  # intermediate steps also add the frozen base W(u_t) (ablation)
    final_input: str = "x0"  # what the final step's W sees: "x0" x~ | "refined" u_T | "gated" x~ + g*(u_T - x~), g=0 at init
    loop_body: str = "attention"  # looped between steps: "attention" only (paper) | "block" (+ out-proj, MLP; SD3)
    remodulate: bool = True  # u_t = modulate(LN(a); shift, scale) between steps; False: u_t = a
    reinject: bool = True  # a = a_x + x~ between steps; False: a = a_x
    state: str = "attention"  # a_x is the attention output before ("attention") or after ("projected") out-proj
    shared_experts: bool = False  # one expert pool shared by all RSR layers (default: one per layer)
    random_depth: bool = False  # training: T ~ U{1..latent_steps} per forward (all layers share it)
    grad_steps: int | None = None  # backprop through only the last grad_steps latent steps (None: all)
    load_balance_weight: float = 0.0  # Switch-style load-balancing loss (paper: none)
    z_loss_weight: float = 0.0  # router z-loss (paper: none)
    init_std: float | None = None  # std of A's normal init; None: 1/sqrt(d_in) (LoRA-style small random)
    expert_init: str = "random"  # "random": A i.i.d. normal; "orthogonal": the experts' A span orthogonal subspaces
    gate_init_std: float = 0.0  # std of the gate's logit-layer weights at init (0: zero, uniform start)
    seed: int = 0  # seed of the adapter initialisation (independent of the global RNG)
    expert_impl: str = "sparse"  # "sparse": only selected experts computed; "dense": reference path
    extra: dict = field(default_factory=dict)  # free-form notes saved with the adapter

    def __post_init__(self):
        self.layers = [int(i) for i in (self.layers if isinstance(self.layers, (list, tuple)) else [self.layers])]
        problems = []
        if not self.layers:
            problems.append("layers must name at least one block")
        if len(set(self.layers)) != len(self.layers) or any(i < 0 for i in self.layers):
            problems.append(f"layers must be distinct non-negative block indices, got {self.layers}")
        for name, (hi, why) in BOUNDS.items():
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), numbers.Integral):
                problems.append(f"{name} must be an integer, got {getattr(self, name)!r}")
            elif getattr(self, name) > hi:
                problems.append(f"{name} must be at most {hi}, got {getattr(self, name)}: {why}")
        for name in ("alpha", "temperature", "temperature_end", "load_balance_weight", "z_loss_weight", "init_std",
                     "gate_init_std"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                      or not math.isfinite(value)):
                problems.append(f"{name} must be a finite number, got {value!r}")
        if problems:
            raise ThinkpixError("invalid RSR config: " + "; ".join(problems))
        if self.num_experts < 1:
            problems.append(f"num_experts must be >= 1, got {self.num_experts}")
        if self.latent_steps < 0:
            problems.append(f"latent_steps must be >= 0, got {self.latent_steps}")
        if self.rank < 1:
            problems.append(f"rank must be >= 1, got {self.rank}")
        if not self.temperature > 0:
            problems.append(f"temperature must be > 0, got {self.temperature}")
        if self.temperature_end is not None and not self.temperature_end > 0:
            problems.append(f"temperature_end must be > 0 or None, got {self.temperature_end}")
        if not self.gate_init_std >= 0:
            problems.append(f"gate_init_std must be >= 0, got {self.gate_init_std}")
        if not 1 <= self.top_k <= self.num_experts:
            problems.append(f"top_k must be in 1..num_experts={self.num_experts}, got {self.top_k}")
        for name, value, allowed in (
            ("routing", self.routing, ROUTINGS),
            ("gate", self.gate, GATES),
            ("state", self.state, STATES),
            ("expert_impl", self.expert_impl, EXPERT_IMPLS),
            ("expert_init", self.expert_init, EXPERT_INITS),
            ("final_input", self.final_input, FINAL_INPUTS),
            ("loop_body", self.loop_body, LOOP_BODIES),
        ):
            if value not in allowed:
                problems.append(f"{name} must be one of {allowed}, got {value!r}")
        if self.loop_body == "block" and not self.remodulate:
            problems.append("loop_body='block' needs remodulate=True (the looped residual stream is re-normalised "
                            "by the block's adaLN before the next step)")
        if self.grad_steps is not None and self.grad_steps < 1:
            problems.append(f"grad_steps must be >= 1 or None, got {self.grad_steps}")
        if self.load_balance_weight < 0 or self.z_loss_weight < 0:
            problems.append("auxiliary loss weights must be >= 0")
        if self.gate_hidden < 1:
            problems.append(f"gate_hidden must be >= 1, got {self.gate_hidden}")
        if problems:
            raise ThinkpixError("invalid RSR config: " + "; ".join(problems))

    @property
    def scaling(self) -> float:
        """LoRA scale applied to every expert output (alpha / rank, 1.0 by default)."""
        return 1.0 if self.alpha is None else float(self.alpha) / self.rank

    def temperature_at(self, progress: float) -> float:
        """Gumbel-Softmax tau at training progress in [0, 1]: `temperature` without annealing, else the
        geometric path temperature -> temperature_end (tau_0 * (tau_1 / tau_0) ** progress)."""
        if self.temperature_end is None:
            return float(self.temperature)
        p = min(max(float(progress), 0.0), 1.0)
        return float(self.temperature * (self.temperature_end / self.temperature) ** p)

    @property
    def inference_temperature(self) -> float:
        """The tau a trained adapter runs at: the end of its annealing (the fixed tau otherwise)."""
        return self.temperature_at(1.0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "RSRConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ThinkpixError(f"unknown RSR config field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes) -> "RSRConfig":
        return dataclasses.replace(self, **changes)

    def differences(self, other: "RSRConfig", ignore=RUNTIME_FIELDS) -> dict:
        """{field: (self value, other value)} for the fields that differ, `ignore` excluded."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if k not in ignore and a[k] != b[k]}

    @classmethod
    def preset(cls, name: str, layers, **fields) -> "RSRConfig":
        """A named reading (`PRESETS`) on `layers`, any field overridden by `fields`."""
        return cls(layers=layers, **{**_preset_fields(name), **fields})

    @classmethod
    def parse(cls, spec: str, **defaults) -> "RSRConfig":
        """Parse `"layers=4,8,12,experts=2,latent_steps=2,gate=linear"` (bare values extend the previous list).

        Aliases: experts=num_experts, k=top_k, tau=temperature; `steps` (deprecated) = latent_steps.
        Booleans accept true/false/1/0/yes/no/on/off.
        """
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        values: dict = dict(defaults)
        key, preset = None, {}
        for token in [t.strip() for t in spec.split(",") if t.strip()]:
            if "=" in token:
                name, raw = (s.strip() for s in token.split("=", 1))
                if name == "preset":
                    preset = _preset_fields(raw)
                    key = None
                    continue
                if name in DEPRECATED:
                    deprecated(f"--rsr {name}=", f"{DEPRECATED[name]}=")
                    name = DEPRECATED[name]
                key = ALIASES.get(name, name)
                if key not in types or key == "extra":
                    raise ThinkpixError(f"--rsr: unknown field {name!r} in {spec!r}; known: {sorted(types)}")
                values[key] = [raw] if key == "layers" else raw
            elif key == "layers":
                values[key].append(token)
            else:
                raise ThinkpixError(f"--rsr: {token!r} in {spec!r} has no 'name=' (only layers take a list)")
        if "layers" not in values:
            raise ThinkpixError(f"--rsr: {spec!r} must name layers, e.g. layers=4,8,12")
        values = {**preset, **values}  # a preset's fields are defaults; fields named in the spec win
        out = {}
        for k, v in values.items():
            if k == "layers" or not isinstance(v, str):
                out[k] = v
                continue
            t = str(types[k])
            try:
                if "bool" in t:
                    if v.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                        raise ValueError(v)
                    out[k] = v.lower() in ("true", "1", "yes", "on")
                elif v.lower() == "none" and "None" in t:
                    out[k] = None
                elif t.startswith("int"):
                    out[k] = int(v)
                elif t.startswith("float"):
                    out[k] = float(v)
                else:
                    out[k] = v
            except ValueError:
                raise ThinkpixError(f"--rsr: bad value {v!r} for {k} (expected {t})") from None
        try:
            out["layers"] = [int(x) for x in out["layers"]]
        except (TypeError, ValueError):
            raise ThinkpixError(f"--rsr: layers must be integers, got {out['layers']}") from None
        return cls(**out)


def _preset_fields(name: str) -> dict:
    if name not in PRESETS:
        raise ThinkpixError(f"unknown RSR preset {name!r}; known: {sorted(PRESETS)}")
    return dict(PRESETS[name])
