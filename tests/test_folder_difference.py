"""The paired image difference: zero for identical folders, the exact mean for a known change."""

import numpy as np
import pytest
from PIL import Image

from thinkpix.analysis.folder_difference import mean_pixel_difference


def _write(root, images):
    for i, image in enumerate(images):
        (root / f"{i:05d}" / "samples").mkdir(parents=True)
        Image.fromarray(image).save(root / f"{i:05d}" / "samples" / "0000.png")


def test_mean_pixel_difference_pairs_samples_by_path(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 200, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    _write(tmp_path / "a", images)
    _write(tmp_path / "b", [images[0], images[1] + 10, images[2]])
    assert mean_pixel_difference(tmp_path / "a", tmp_path / "a") == (0.0, 3)
    assert mean_pixel_difference(tmp_path / "a", tmp_path / "b") == pytest.approx((10 / 3, 3))
    with pytest.raises(SystemExit, match="no samples in common"):
        mean_pixel_difference(tmp_path / "a", tmp_path / "missing")
