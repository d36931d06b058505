"""The worlds, one package each: `shapes` (coloured shapes, GenEval-style prompts, the training stream), its
class-conditional variant `classes` (one object per image, class = colour x shape) and `lake` (FrozenLake-style
maps). The shapes world's common names are re-exported here."""

from .classes import CLASSES
from .shapes import (BACKGROUND, COLOR_NAMES, COLORS, SHAPES, TASKS, SceneObject, TrainingStream, geneval_set,
                     random_metadata, render, scene_from_metadata)

__all__ = [
    "BACKGROUND", "CLASSES", "COLORS", "COLOR_NAMES", "SHAPES", "TASKS", "SceneObject", "TrainingStream",
    "geneval_set", "random_metadata", "render", "scene_from_metadata",
]
