"""The shapes world: coloured circles, squares and triangles on a small canvas (palette, shape templates,
geometry, the scene renderer), GenEval-style and dense prompts with their metadata, the seeded training
stream and the text encoder's vocabulary. See docs/world.md."""

from .geometry import RELATIONS, relative_position
from .palette import BACKGROUND, COLOR_NAMES, COLORS
from .prompts import TASKS, geneval_set, random_metadata
from .scene import SceneObject, render, scene_from_metadata
from .stream import TrainingStream
from .templates import SHAPES, coverage, shape_mask

__all__ = [
    "BACKGROUND", "COLORS", "COLOR_NAMES", "RELATIONS", "SHAPES", "TASKS", "SceneObject", "TrainingStream",
    "coverage", "geneval_set", "random_metadata", "relative_position", "render", "scene_from_metadata", "shape_mask",
]
