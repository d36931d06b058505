import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(1)


@pytest.fixture
def tiny_cfg(tmp_path):
    """A tiny pixel-space text-to-image training config with the learned word encoder."""
    from thinkpix.training.config import config_from_dict

    def make(**overrides):
        base = {
            "model": {"kind": "mmdit", "size": "tiny", "space": "pixel", "text_encoder": "words"},
            "out_dir": str(tmp_path / "run"),
            "steps": 6,
            "batch_size": 4,
            "log_every": 2,
            "ckpt_every": 3,
            "sample_every": 1000,
            "optim": {"warmup_steps": 2, "lr": 1e-3},
        }
        for key, value in overrides.items():
            node = base
            parts = key.split("__")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        return config_from_dict(base)

    return make

