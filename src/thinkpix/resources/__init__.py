"""Files the package ships and its commands fall back on: the default fine-tune and lake configs and
the committed GenEval-style evaluation set. They live here, inside the package, so an installed wheel
finds them without the source tree; `configs/` and `data/eval/` of a clone link to them.

    resource("configs/finetune_rsr.yaml")   # a pathlib.Path inside the installed package
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..errors import ThinkpixError


def resource(name: str) -> Path:
    """The packaged file `name` (relative to this folder), or a ThinkpixError if the install lacks it."""
    path = Path(str(files(__package__).joinpath(name)))
    if not path.is_file():
        raise ThinkpixError(f"{name}: not shipped with this thinkpix install ({path} is missing)")
    return path
