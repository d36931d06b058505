"""The lake world's training config: `LakeTrainConfig`, the usual `TrainConfig` plus a `lake` section
(training range, path choice, depth, RSR trained in), each key declared with its Spec; `lake_config` reads
and checks one. Light on purpose (no model code): `thinkpix lake train --help` lists these keys without
loading the training stack."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ThinkpixError
from ...rsr.config import RSRConfig
from ...spec import Spec, key
from ...training.config import TrainConfig, apply_mapping, parse_overrides, read_config_file, validate
from .maps import MAX_SIZE, MIN_SIZE
from .sets import TARGETS, parse_range


MAX_LENGTH = MAX_SIZE * MAX_SIZE - 1  # a shortest path visits each cell of the largest map at most once
RSR_HELP = "RSR trained in from the start, base trainable, e.g. layers=1,2,latent_steps=4,random_depth=true"


@dataclass
class LakeSection:
    """The `lake.*` config keys, each declared with its Spec (type, range, unit, meaning)."""

    sizes: str = key("4,5", Spec(str, "grid sizes of the training maps", MIN_SIZE, MAX_SIZE, unit="cells a side",
                                 ranges=True, empty=False, why_max="8 cells fill the 32x32 canvas at 4 pixels a cell"))
    lengths: str = key("1-6", Spec(str, "shortest-path lengths of the training maps", 1, MAX_LENGTH, unit="moves",
                                   ranges=True, empty=False, why_max="a shortest path visits each cell of an 8x8 map at most once"))
    random_path: bool = key(False, Spec(bool, "target: a random shortest path (default: the canonical one, "
                                              "maps.shortest_path)"))
    target: str = key("path", Spec(str, "path | position (the agent's cell after k moves; k is a condition token)",
                                   choices=TARGETS))
    depth: int = key(0, Spec(int, "transformer blocks (0: the model.size's own)", 0, 64, unit="blocks",
                             why_max="each block adds its weights and its share of every forward pass"))
    rsr: str = key("", Spec(str, RSR_HELP + " (keys: `thinkpix lake train --help`)"))
    path_weight: float = key(1.0, Spec(float, "flow-loss weight of the pixels where the solution differs from the "
                                              "map (the path); 1: the plain loss", 1.0))
    patch_context: int = key(0, Spec(int, "patches on each side the patch embedding sees (0: plain; 1: 3x3 cells "
                                          "at 32x32)", 0, 3, unit="cells"))


@dataclass
class LakeTrainConfig(TrainConfig):
    lake: LakeSection = field(default_factory=LakeSection)


def lake_config(path: str | Path | None, overrides: list[str] = ()) -> LakeTrainConfig:
    """A lake training config from YAML plus dotted overrides; ThinkpixError naming a bad key."""
    cfg = LakeTrainConfig()
    apply_mapping(cfg, read_config_file(path))
    apply_mapping(cfg, parse_overrides(list(overrides)))
    validate(cfg)
    if cfg.model.kind != "mmdit" or cfg.model.space != "pixel":
        raise ThinkpixError("the lake model is a pixel-space MMDiT: model.kind must be mmdit, model.space pixel")
    # types, ranges and choices of every lake.* key: checked by their Specs (apply_mapping, validate)
    if cfg.lake.target == "position" and max(parse_range(cfg.lake.lengths)) < 2:
        raise ThinkpixError("config key 'lake.lengths': the position target needs paths of 2 or more moves")
    if cfg.lake.rsr:
        try:
            RSRConfig.parse(cfg.lake.rsr)  # every key checked by its Spec (rsr/config.py)
        except ThinkpixError as exc:
            raise ThinkpixError(f"config key 'lake.rsr': {exc}") from None
        if cfg.finetune.method != "none":
            raise ThinkpixError("lake.rsr (RSR trained in) and finetune.method (an adapter on a frozen base) exclude each other")
    if cfg.model.rsr:
        raise ThinkpixError("a lake model takes RSR trained in as lake.rsr, not model.rsr")
    return cfg
