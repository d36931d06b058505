"""Exact GenEval-style evaluation of shapes-world images: detector, GenEval rules, dense
(DPG-style) scoring, and the folder runner."""

from .dense import score_dense
from .detect import COUNTING_THRESHOLD, MAX_OBJECTS, THRESHOLD, Detection, detect, detect_all
from .geneval import evaluate
from .runner import evaluate_folder, format_table, score_image, summarise

__all__ = [
    "COUNTING_THRESHOLD", "MAX_OBJECTS", "THRESHOLD", "Detection", "detect", "detect_all", "evaluate",
    "evaluate_folder", "format_table", "score_dense", "score_image", "summarise",
]
