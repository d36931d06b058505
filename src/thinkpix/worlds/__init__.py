"""The shapes world: palette, shape templates, scenes, GenEval-style prompts, training stream, and the
class-conditional variant (one object per image, class = colour x shape)."""

from .classes import CLASSES
from .palette import BACKGROUND, COLOR_NAMES, COLORS
from .prompts import TASKS, geneval_set, random_metadata
from .scene import SceneObject, render, scene_from_metadata
from .shapes import SHAPES
from .stream import TrainingStream

__all__ = [
    "BACKGROUND", "CLASSES", "COLORS", "COLOR_NAMES", "SHAPES", "TASKS", "SceneObject", "TrainingStream",
    "geneval_set", "random_metadata", "render", "scene_from_metadata",
]
