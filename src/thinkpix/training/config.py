"""Training configuration: dataclasses, loaded from YAML, with dotted command-line overrides.

    cfg = load_config("configs/base_demo.yaml", ["optim.lr=5e-4", "steps=2000"])

Unknown keys, wrong types and out-of-range values raise `ThinkpixError` naming the key.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..declarations import MAX_SEED
from ..errors import ThinkpixError
from ..rsr.config import BOUNDS
from ..schema import Spec, Word, key, spec_of


WHY_CANVAS = "the shapes world renders 32 and 64 px canvases"


@dataclass
class ModelConfig:
    kind: str = key("mmdit", Spec(str, "mmdit (text-to-image) | dit (class-conditional) | autoencoder | features "
                                       "(FD network)", choices=("mmdit", "dit", "autoencoder", "features")))
    size: str = key("tiny", Spec(str, "a size name from thinkpix.models.registry", empty=False))
    space: str = key("pixel", Spec(str, "pixel | latent (needs `autoencoder`); mmdit and dit only",
                                   choices=("pixel", "latent")))
    autoencoder: str = key("", Spec(str, "folder of a trained autoencoder (latent space)"))
    text_encoder: str = key("minilm", Spec(str, "minilm (frozen, offline) | words (small learned encoder, tests); "
                                               "mmdit only", choices=("minilm", "words")))
    canvas: int = key(32, Spec(int, "image side", choices=(32, 64), unit="pixels"))
    rsr: str = key("", Spec(str, "RSR trained in from the start (base trainable), e.g. "
                                 "layers=2,3,experts=2,latent_steps=4,random_depth=true"))


@dataclass
class OptimConfig:
    lr: float = key(1e-3, Spec(float, "AdamW learning rate", 0.0, 10.0, lo_open=True))
    weight_decay: float = key(0.0, Spec(float, "AdamW weight decay", 0.0, 10.0))
    beta1: float = key(0.9, Spec(float, "AdamW beta1", 0.0, 1.0, hi_open=True))
    beta2: float = key(0.99, Spec(float, "AdamW beta2", 0.0, 1.0, hi_open=True))
    warmup_steps: int = key(200, Spec(int, "linear warm-up of the learning rate", 0, 10**9, unit="steps"))
    schedule: str = key("constant", Spec(str, "after warm-up: constant | cosine", choices=("constant", "cosine")))
    min_lr_ratio: float = key(0.1, Spec(float, "cosine: the last learning rate / lr", 0.0, 1.0))
    grad_clip: float = key(1.0, Spec(float, "gradient-norm clipping", 0.0, lo_open=True))


@dataclass
class FinetuneConfig:
    """Adapter-only fine-tuning of a frozen base (method none = train from scratch)."""

    base: str = key("", Spec(str, "model folder or bundled name of the frozen base"))
    method: str = key("none", Spec(str, "none (train from scratch) | rsr | lora (the paper's SFT baseline) | full "
                                        "(the whole transformer trains further)", choices=("none", "rsr", "lora", "full")))
    rsr: str = key("", Spec(str, "RSR spec, e.g. layers=2,3,experts=2,latent_steps=2,rank=8 (latent_steps <= "
                                 f"{BOUNDS['latent_steps'][0]}, experts <= {BOUNDS['num_experts'][0]}, rank <= "
                                 f"{BOUNDS['rank'][0]})"))
    lora_layers: str = key("", Spec(str, "LoRA blocks, e.g. 2,3 (default: the RSR spec's layers)"))
    lora_rank: int = key(0, Spec(int, "LoRA rank (0: the rank whose parameter count matches the RSR spec)", 0,
                                 BOUNDS["rank"][0], why_max=BOUNDS["rank"][1]))
    gate_lr_mult: float = key(1.0, Spec(float, "RSR: learning rate of the gates = optim.lr * this", 0.0, 1e6,
                                        lo_open=True))
    expert_lr_mult: float = key(1.0, Spec(float, "RSR: learning rate of the experts = optim.lr * this", 0.0, 1e6,
                                          lo_open=True))


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    out_dir: str = key("runs/default", Spec(str, "run folder: checkpoints, metrics, samples, the export", path="out-dir"))
    steps: int = key(1000, Spec(int, "optimiser steps", 1, 10**9, unit="steps"))
    batch_size: int = key(64, Spec(int, "global batch (split across data-parallel processes)", 1, 65_536,
                                   unit="samples", why_max="a batch is held in memory"))
    seed: int = key(0, Spec(int, "seed of data, noise and initialisation", 0, MAX_SEED,
                            why_max="seeds feed torch and NumPy generators"))
    ema_decay: float = key(0.999, Spec(float, "EMA decay of the exported weights (0: no EMA)", 0.0, 1.0, hi_open=True))
    cond_dropout: float = key(0.1, Spec(float, "share of captions (class labels) replaced by the empty prompt (null "
                                               "class), for guidance", 0.0, 1.0, hi_open=True))
    data_pool: int = key(0, Spec(int, "0: the infinite stream; N: a fixed set of N samples, seen for many epochs", 0,
                                 10**7, unit="samples"))
    validate_every: int = key(0, Spec(int, "steps between validation-loss (+ RSR instrument) records in "
                                           "metrics.jsonl; 0: off", 0, unit="steps"))
    validation_samples: int = key(64, Spec(int, "size of the fixed validation set (held out, disjoint from data/eval "
                                                "prompts)", 1, 10**6, unit="samples"))
    data_mix: str = key("", Spec(str, 'weights of the stream\'s kinds, e.g. "position=2,free=1" (text), or of colours '
                                      'and shapes, e.g. "circle=3" (class); "" = default'))
    threads: int = key(0, Spec(int, "torch threads per process; 0 = leave torch's default", 0, 1024))
    precision: str = key("fp32", Spec(str, "fp32 | bf16 (autocast; weights, optimiser, EMA, losses stay fp32) | auto "
                                           "(thinkpix.precision)", choices=("fp32", "bf16", "auto")))
    log_every: int = key(25, Spec(int, "steps between metrics lines", 1, unit="steps"))
    sample_every: int = key(1000, Spec(int, "steps between preview samples", 1, unit="steps"))
    ckpt_every: int = key(500, Spec(int, "steps between checkpoints", 1, unit="steps"))
    keep_checkpoints: int = key(2, Spec(int, "checkpoints kept", 1, 10_000))
    grad_checkpointing: bool = key(False, Spec(bool, "recompute the transformer's blocks in backward"))
    compile: bool = key(False, Spec(bool, "torch.compile each transformer block (inductor; the first step compiles; "
                                          "docs/training.md, torch.compile)"))


def apply_mapping(obj, data: dict, prefix: str = "") -> None:
    """Set the dataclass `obj`'s fields from a nested mapping, each value checked by its field's Spec
    (`thinkpix.schema`); ThinkpixError naming an unknown key or a bad value."""
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for name, value in data.items():
        full = f"{prefix}{name}"
        if name not in fields:
            raise ThinkpixError(f"unknown config key {full!r}; known: {', '.join(sorted(fields))}")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ThinkpixError(f"config key {full!r} is a section; give its fields")
            apply_mapping(current, value, full + ".")
        else:
            if value is None:
                raise ThinkpixError(f"config key {full!r}: no value given (a key with nothing after the colon)")
            spec, label = spec_of(fields[name], hints[name]), f"config key {full!r}"
            setattr(obj, name, spec.parse(value, label) if isinstance(value, Word) else spec.check(value, label))


def check_fields(obj, prefix: str = "") -> None:
    """Every field of a config (as built, loaded or set by the library) checked by its Spec; an out-dir checked
    for writability."""
    from ..validation import output_path

    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, full = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_fields(value, full + ".")
            continue
        spec = spec_of(f, hints[f.name])
        spec.check(value, f"config key {full!r}")
        if spec.path == "out-dir":
            output_path(value, f"config key {full!r}", "dir")


def validate(cfg: TrainConfig) -> TrainConfig:
    check_fields(cfg)  # types, ranges and choices of every key (NaN refused), a writable out_dir
    if cfg.data_mix:
        from ..worlds.classes.sets import CLASS_PARTS
        from ..worlds.shapes.stream import DEFAULT_MIX
        from .data import parse_mix

        try:
            weights = parse_mix(cfg.data_mix)
        except ValueError:
            raise ThinkpixError(f"config key 'data_mix': weights must be numbers, got {cfg.data_mix!r}") from None
        for mix_name, weight in weights.items():
            Spec(float, "a data-mix weight", 0.0).check(weight, f"config key 'data_mix' weight of {mix_name!r}")
        if not any(w > 0 for w in weights.values()):
            raise ThinkpixError(f"config key 'data_mix': at least one weight must be > 0, got {cfg.data_mix!r}")
        names = set(weights)
        class_names = {part for pair in CLASS_PARTS for part in pair}  # colours and shapes
        if not (names <= set(DEFAULT_MIX) or names <= class_names):
            raise ThinkpixError(f"config key 'data_mix': {sorted(names)} is neither a text-stream mix (kinds: "
                                f"{list(DEFAULT_MIX)}) nor a class mix (colours and shapes: {sorted(class_names)})")
    if cfg.model.rsr:
        from ..rsr.config import RSRConfig

        try:
            trained_in = RSRConfig.parse(cfg.model.rsr)  # every key checked by its Spec (rsr/config.py)
        except ThinkpixError as exc:
            raise ThinkpixError(f"config key 'model.rsr': {exc}") from None
        if trained_in.latent_steps < 1:
            raise ThinkpixError("config key 'model.rsr': steps=0 is the plain model, with no recursion to train; "
                                "give latent steps >= 1")
        if cfg.finetune.method != "none":
            raise ThinkpixError("model.rsr (RSR trained in) and finetune.method (an adapter on a frozen base) exclude each other")
        if cfg.model.kind not in ("mmdit", "dit"):
            raise ThinkpixError(f"config key 'model.rsr' needs model.kind mmdit or dit, not {cfg.model.kind!r}")
    if cfg.finetune.method != "none":
        if not cfg.finetune.base:
            raise ThinkpixError("config key 'finetune.base' is required for fine-tuning (a model folder or bundled name)")
        if cfg.finetune.method == "full":
            return cfg  # the base trained further: no adapter spec
        if not cfg.finetune.rsr and not (cfg.finetune.method == "lora" and cfg.finetune.lora_layers and cfg.finetune.lora_rank):
            raise ThinkpixError("config key 'finetune.rsr' is required (e.g. layers=2,3,experts=2,latent_steps=2); "
                                "a LoRA run without it needs finetune.lora_layers and finetune.lora_rank")
        if cfg.finetune.rsr:
            from ..rsr.config import RSRConfig

            spec = RSRConfig.parse(cfg.finetune.rsr)  # a ThinkpixError if malformed, before the base loads
            if cfg.finetune.method == "rsr" and spec.latent_steps < 1:
                raise ThinkpixError("--rsr / config key 'finetune.rsr': steps=0 is the base model, with nothing to "
                                    "train; fine-tuning needs latent steps >= 1")
        return cfg  # the model section comes from the base model
    if cfg.model.kind in ("mmdit", "dit") and cfg.model.space == "latent" and not cfg.model.autoencoder:
        raise ThinkpixError("config key 'model.autoencoder' is required when model.space is 'latent'")
    from ..models.registry import size_config  # late import: the registry imports torch

    try:
        size_config(cfg.model.kind, cfg.model.size)
    except KeyError as exc:
        raise ThinkpixError(f"config key 'model.size': {exc.args[0]}") from None
    return cfg


def parse_overrides(overrides: list[str]) -> dict:
    """['optim.lr=5e-4', 'steps=2000'] -> {'optim': {'lr': Word('5e-4')}, 'steps': Word('2000')}: each value is
    parsed later by its key's Spec (an integer key takes digits, a text key keeps its text, `true` is a switch)."""
    nested: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ThinkpixError(f"override {item!r} must look like key.sub=value")
        key_text, raw = item.split("=", 1)
        node = nested
        parts = key_text.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ThinkpixError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = Word(raw)
    return nested


def config_from_dict(data: dict, overrides: list[str] = ()) -> TrainConfig:
    cfg = TrainConfig()
    apply_mapping(cfg, data or {})
    apply_mapping(cfg, parse_overrides(list(overrides)))
    return validate(cfg)


def read_config_file(path: str | Path | None) -> dict:
    """A YAML config file's mapping ({} for no file); ThinkpixError for a missing, undecodable or
    malformed file. Shared by every config kind (training, fine-tuning, the lake world)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.exists():
        raise ThinkpixError(f"{path}: config file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except UnicodeDecodeError:
        raise ThinkpixError(f"{path}: not valid UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise ThinkpixError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except ThinkpixError as exc:  # a duplicate key
        raise ThinkpixError(f"{path}: {exc}") from None
    if data is None:  # a 0-byte or comment-only file (or one cut short before its first key)
        raise ThinkpixError(f"{path}: holds no config keys (empty or only comments); refusing to train the defaults")
    if not isinstance(data, dict):
        raise ThinkpixError(f"{path}: top level must be a mapping of config keys")
    if not data:
        raise ThinkpixError(f"{path}: an empty mapping; refusing to train the defaults")
    return data


class _StrictLoader(yaml.SafeLoader):
    """yaml's safe loader that refuses a key given twice in one mapping (plain YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ThinkpixError(f"line {key_node.start_mark.line + 1}: key {key!r} given twice")
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    return config_from_dict(read_config_file(path), overrides)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
