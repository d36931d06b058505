"""The feature network of the class-conditional track's Fréchet distance (our stand-in for FID's
Inception network, which we cannot download and which has never seen this world).

Network (`FeatureNet`): three stages of [3x3 conv stride 2, 3x3 conv stride 1], each followed by
GroupNorm and GELU (32x32 -> 16 -> 8 -> 4), flatten, a linear layer + GELU to `dim` features, and
two heads on those features: the 24 class logits and the object's geometry (centre x, centre y,
box side, as fractions of the canvas). The Fréchet distance uses the `dim` features.

Training (`thinkpix train configs/features_demo.yaml`, objective `FeatureObjective`): clean renders
of the class-conditional world (one object, random class, position and size; the training key
(seed, step, index) as for the DiT), loss = cross-entropy of the class + MSE of the geometry. The
geometry head is there so that the features also encode where and how large the object is, not only
which class it is: a network trained on classes alone could map a misplaced or wrongly sized object
to the same features as a correct one.

What the distance built on it can and cannot say:
- It was trained on clean renders only. Generated images with blurred edges, stray blobs or mixed
  colours are outside its training distribution; how far their features move is whatever this
  network happens to do there, not a calibrated measure of perceived quality.
- Features separate classes and encode position and size, so the distance reacts to class balance
  and to the spread of positions and sizes; it reacts to shape defects only as far as they move
  these features. Class accuracy from the exact detector is the sharper per-image measure.
- Absolute values depend on these weights. Compare models only with the same network file (its
  sha256 is stored in features.json and reported with every distance); the numbers are not
  comparable to ImageNet FIDs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..files import read_checked_record, sha256_file, write_manifest
from ..worlds.classes.sets import CLASSES
from ..worlds.shapes.palette import BACKGROUND
from .autoencoder import images_to_unit
from .registry import size_config

FORMAT = "thinkpix-features"
WEIGHTS, CONFIG = "features.safetensors", "features.json"
GEOMETRY = 3  # centre x, centre y, box side (fractions of the canvas)


class FeatureNet(nn.Module):
    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), dim: int = 128, canvas: int = 32,
                 num_classes: int = len(CLASSES)):
        super().__init__()
        layers, prev = [], 3
        for c in channels:  # each stage halves the resolution
            layers += [nn.Conv2d(prev, c, 3, stride=2, padding=1), nn.GroupNorm(min(8, c), c), nn.GELU(),
                       nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(min(8, c), c), nn.GELU()]
            prev = c
        self.convs = nn.Sequential(*layers)
        side = canvas // 2 ** len(channels)
        self.embed = nn.Linear(prev * side * side, dim)
        self.classes = nn.Linear(dim, num_classes)
        self.geometry = nn.Linear(dim, GEOMETRY)
        self.dim = dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) in [-1, 1] -> features (B, dim)."""
        h = self.convs(x)  # (B, C, H / 2^k, W / 2^k)
        return F.gelu(self.embed(h.flatten(1)))  # (B, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, H, W) -> class logits (B, num_classes), geometry (B, 3)."""
        f = self.features(x)  # (B, dim)
        return self.classes(f), self.geometry(f)


def build_feature_net(size: str = "demo", canvas: int = 32) -> FeatureNet:
    cfg = size_config("features", size)
    return FeatureNet(tuple(cfg["channels"]), cfg["dim"], canvas)


def geometry_targets(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 renders of one object -> (B, 3): box centre x, centre y and side (the
    larger of width and height), as fractions of the canvas, from the non-background pixels."""
    canvas = images.shape[1]
    fg = (images != torch.tensor(BACKGROUND, dtype=images.dtype)).any(-1)  # (B, H, W)
    out = torch.zeros(len(images), GEOMETRY)
    for i, mask in enumerate(fg):
        rows, cols = torch.nonzero(mask.any(1)).flatten(), torch.nonzero(mask.any(0)).flatten()
        if len(rows):
            y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            out[i] = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, torch.maximum(x1 - x0, y1 - y0)]).float() / canvas
    return out


def feature_loss(net: FeatureNet, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """images (B, H, W, 3) uint8, labels (B,) -> (cross-entropy + geometry MSE, metrics)."""
    logits, geometry = net(images_to_unit(images))  # (B, K), (B, 3)
    ce = F.cross_entropy(logits, labels)
    mse = F.mse_loss(geometry, geometry_targets(images))
    accuracy = (logits.argmax(-1) == labels).float().mean().item()
    return ce + mse, {"ce": ce.item(), "geometry_mse": mse.item(), "accuracy": accuracy}


@torch.no_grad()
def extract_features(net: FeatureNet, images, batch_size: int = 512) -> np.ndarray:
    """(N, H, W, 3) uint8 images (tensor or array) -> (N, dim) float64 features, eval mode."""
    images = torch.as_tensor(np.asarray(images))
    net.eval()
    out = [net.features(images_to_unit(images[i : i + batch_size])).double() for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, net.dim))


# ---- save / load ----------------------------------------------------------------------------------
def save_feature_net(net: FeatureNet, path, size: str, canvas: int, training: dict | None = None) -> Path:
    """features.safetensors + features.json (size, canvas, classes, sha256 of the weights, training)."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().float().contiguous() for k, v in net.state_dict().items()}, str(out / WEIGHTS),
              metadata={"format": FORMAT})
    record = {"format": FORMAT, "size": size, "canvas": canvas, "classes": list(CLASSES),
              "sha256": sha256_file(out / WEIGHTS), "training": training or {}}
    (out / CONFIG).write_text(json.dumps(record, indent=1) + "\n")
    write_manifest(out)
    return out


def load_feature_net(path) -> tuple[FeatureNet, dict]:
    """-> (network in eval mode, its features.json record); refuses a damaged or foreign folder."""
    d = Path(path)
    record = read_checked_record(d, CONFIG, WEIGHTS, FORMAT, "feature network")
    net = build_feature_net(record["size"], record["canvas"])
    net.load_state_dict(load_file(d / WEIGHTS))
    return net.eval().requires_grad_(False), record
