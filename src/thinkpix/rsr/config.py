"""`RSRConfig`: one dataclass threaded through the whole mechanism.

Every default follows the paper (Sun et al. 2026, "The Thinking Pixel", summarised in docs/paper.md);
every place where the paper is silent is a field, so each of our choices can be ablated. See docs/rsr.md
for the mapping.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from thinkpix.deprecation import deprecated
from thinkpix.errors import ThinkpixError
from thinkpix.spec import Spec, key

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

# Reasons for the maxima that protect the machine, the same in training and at inference (`--latent_steps`). A rank
# above a layer's own width is refused too, when RSR is attached (`RSRModule`). `BOUNDS` (field -> (maximum, why))
# is read from the fields' Specs below.
WHY = {
    "latent_steps": "every latent step reruns the block's attention (the paper uses T = 2-4; inference caps "
                    "--latent_steps at 64 too)",
    "rank": "above the widest projection of any supported base (FLUX: 3072), where a rank adds parameters, "
            "not expressiveness",
    "num_experts": "the gate, the expert weights and the routing statistics grow with M",
    "gate_hidden": "the gate's hidden width; its memory grows with it",
    "seed": "seeds feed torch and NumPy generators",
}
LAYER = Spec(int, "index of a transformer block that gets RSR (a list: layers=4,8,12)", 0, unit="block index")

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

    layers: list[int] = field(metadata={"spec": LAYER})  # indices of the transformer blocks that get RSR
    num_experts: int = key(2, Spec(int, "M: LoRA experts per pool", 1, 256, unit="experts",
                                   why_max=WHY["num_experts"]))
    latent_steps: int = key(2, Spec(int, "T: latent thinking steps (the most, with random_depth); 0: the base model",
                                    0, 64, unit="steps", why_max=WHY["latent_steps"]))
    rank: int = key(8, Spec(int, "r: LoRA rank of each expert (per q/k/v projection)", 1, 4096,
                            why_max=WHY["rank"]))
    alpha: float | None = key(None, Spec(float, "LoRA scaling: experts scaled by alpha / rank (none: 1)",
                                         nullable=True))
    temperature: float = key(5.0, Spec(float, "Gumbel-Softmax tau (fixed, as in the paper; the start value when "
                                              "annealed)", 0.0, lo_open=True))
    temperature_end: float | None = key(None, Spec(float, "anneal tau geometrically to this over training (none: a "
                                                          "fixed tau)", 0.0, lo_open=True, nullable=True))
    top_k: int = key(1, Spec(int, "experts per token (paper: 1, winner-takes-all); at most num_experts", 1, 256,
                             unit="experts", why_max=WHY["num_experts"]))
    routing: str = key("hard", Spec(str, "hard: Gumbel top-k straight-through | soft: dense softmax mixture",
                                    choices=ROUTINGS))
    scale_by_prob: bool = key(True, Spec(bool, "the selected expert's output scaled by its (Gumbel-)softmax "
                                               "probability"))
    gate: str = key("mlp", Spec(str, "mlp on [u ; proj(y)] | tokens_only (MLP on u) | linear on [u ; y]",
                                choices=GATES))
    gate_hidden: int = key(64, Spec(int, "hidden width of the MLP gate", 1, 65_536, why_max=WHY["gate_hidden"]))
    base_every_step: bool = key(False, Spec(bool, "intermediate steps also add the frozen base W(u_t) (ablation)"))
    final_input: str = key("x0", Spec(str, "what the final step's W sees: x0 (x~) | refined (u_T) | gated "
                                           "(x~ + g (u_T - x~), g = 0 at init)", choices=FINAL_INPUTS))
    loop_body: str = key("attention", Spec(str, "looped between steps: attention only (paper) | block (+ out-proj, "
                                                "MLP; SD3)", choices=LOOP_BODIES))
    remodulate: bool = key(True, Spec(bool, "u_t = modulate(LN(a); shift, scale) between steps (false: u_t = a)"))
    reinject: bool = key(True, Spec(bool, "a = a_x + x~ between steps (false: a = a_x)"))
    state: str = key("attention", Spec(str, "a_x is the attention output before (attention) or after (projected) "
                                            "the out-projection", choices=STATES))
    shared_experts: bool = key(False, Spec(bool, "one expert pool shared by all RSR layers (default: one per layer)"))
    random_depth: bool = key(False, Spec(bool, "training: T ~ U{1..latent_steps} per forward, shared by all layers"))
    grad_steps: int | None = key(None, Spec(int, "backprop through only the last grad_steps latent steps (none: all)",
                                            1, unit="steps", nullable=True))
    load_balance_weight: float = key(0.0, Spec(float, "Switch-style load-balancing loss weight (paper: none)", 0.0))
    z_loss_weight: float = key(0.0, Spec(float, "router z-loss weight (paper: none)", 0.0))
    init_std: float | None = key(None, Spec(float, "std of the experts' A at init (none: 1/sqrt(d_in), LoRA-style)",
                                            0.0, nullable=True))
    expert_init: str = key("random", Spec(str, "random: A i.i.d. normal | orthogonal: the experts' A span orthogonal "
                                               "subspaces", choices=EXPERT_INITS))
    gate_init_std: float = key(0.0, Spec(float, "std of the gate's logit-layer weights at init (0: zero, a uniform "
                                                "start)", 0.0))
    seed: int = key(0, Spec(int, "seed of the adapter initialisation (independent of the global generator)", 0,
                            2**32 - 1, why_max=WHY["seed"]))
    expert_impl: str = key("sparse", Spec(str, "sparse: only the selected experts computed | dense: the reference "
                                               "path", choices=EXPERT_IMPLS))
    extra: dict = field(default_factory=dict)  # free-form notes saved with the adapter (JSON), not read by RSR

    def __post_init__(self):
        """Every field checked by its Spec (strict types: no bool as a number, finite numbers, ranges, choices),
        then the rules that join two fields; ThinkpixError 'invalid RSR config: ...' listing every problem."""
        if not isinstance(self.layers, (list, tuple)):
            self.layers = [self.layers]
        problems = []
        for name, spec in field_specs().items():
            try:
                if name == "layers":
                    self.layers = [LAYER.check(i, "layers") for i in self.layers]
                elif spec.type is int:  # an integral 2.0 (or a NumPy integer) kept as the int 2
                    setattr(self, name, spec.check(getattr(self, name), name))
                else:
                    spec.check(getattr(self, name), name)
            except ThinkpixError as exc:
                problems.append(str(exc))
        if not problems:
            if not self.layers:
                problems.append("layers must name at least one block")
            if len(set(self.layers)) != len(self.layers):
                problems.append(f"layers must be distinct block indices, got {self.layers}")
            if self.top_k > self.num_experts:
                problems.append(f"top_k must be in 1..num_experts={self.num_experts}, got {self.top_k}")
            if self.loop_body == "block" and not self.remodulate:
                problems.append("loop_body='block' needs remodulate=True (the looped residual stream is re-normalised "
                                "by the block's adaLN before the next step)")
        if not isinstance(self.extra, dict):
            problems.append(f"extra must be a mapping of notes, got {type(self.extra).__name__}")
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
        known = {f.name for f in dataclasses.fields(cls)}
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
                if key not in known or key == "extra":
                    raise ThinkpixError(f"--rsr: unknown field {name!r} in {spec!r}; known: {sorted(known - {'extra'})}")
                values[key] = [raw] if key == "layers" else raw
            elif key == "layers":
                values[key].append(token)
            else:
                raise ThinkpixError(f"--rsr: {token!r} in {spec!r} has no 'name=' (only layers take a list)")
        if "layers" not in values:
            raise ThinkpixError(f"--rsr: {spec!r} must name layers, e.g. layers=4,8,12")
        values = {**preset, **values}  # a preset's fields are defaults; fields named in the spec win
        specs = field_specs()
        out = {}
        for k, v in values.items():
            if k == "layers" or not isinstance(v, str):
                out[k] = v
                continue
            spec = specs[k]
            if spec.nullable and spec.type is not bool and v.strip().lower() == "none":
                out[k] = None
                continue
            if spec.type is bool:
                v = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false", "off": "false"}.get(
                    v.strip().lower(), v)
            out[k] = spec.parse(v, f"--rsr {k}")
        out["layers"] = [LAYER.parse(x, "--rsr layers") if isinstance(x, str) else x for x in out["layers"]]
        return cls(**out)


def field_specs() -> dict:
    """{field name: Spec} of every declared RSRConfig field (all but `extra`), in declaration order."""
    return {f.name: f.metadata["spec"] for f in dataclasses.fields(RSRConfig) if "spec" in f.metadata}


def keys_help(title: str = "keys of an RSR spec (--rsr / model.rsr / finetune.rsr / lake.rsr)") -> str:
    """A --help section: every RSR key with its short names, default, type, range, unit and meaning."""
    short = {v: k for k, v in ALIASES.items()}
    rows = [f"{title}:", "  layers=4,8,12 is required; presets: preset=" + "|".join(PRESETS)]
    for f in dataclasses.fields(RSRConfig):
        if "spec" not in f.metadata:
            continue
        spec = f.metadata["spec"]
        name = f"{f.name} (or {short[f.name]})" if f.name in short else f.name
        shown = "none" if f.default is None else str(f.default).lower() if isinstance(f.default, bool) else f.default
        default = "" if f.default is dataclasses.MISSING else f" = {shown}"
        kind = "true|false" if spec.type is bool else spec.describe() + (" or none" if spec.nullable else "")
        rows.append(f"  {name}{default}  ({kind}): {spec.help}")
    return "\n".join(rows)


BOUNDS = {name: (spec.hi, spec.why_max) for name, spec in field_specs().items() if spec.why_max and name != "top_k"}


def _preset_fields(name: str) -> dict:
    if name not in PRESETS:
        raise ThinkpixError(f"unknown RSR preset {name!r}; known: {sorted(PRESETS)}")
    return dict(PRESETS[name])
