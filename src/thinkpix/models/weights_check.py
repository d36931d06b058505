"""Weights are what they claim: before diffusers loads a model folder (`config.json` + safetensors), the
dtype and shape of every tensor in the files' headers are checked against the model its config builds
(built on the meta device: no memory, no weights read). A header edited from F32 to I32, a config that
disagrees with its weights, a missing or an extra tensor: one ThinkpixError naming the file and tensor,
never integer garbage loaded as weights and never a diffusers traceback."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ThinkpixError

FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")  # what model weights are stored as


def header_tensors(folder: Path) -> dict[str, tuple[str, tuple[int, ...], Path]]:
    """{tensor name: (safetensors dtype tag, shape, file)} of every *.safetensors file in `folder`, read from
    the headers only."""
    from safetensors import safe_open

    found: dict = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt", device="cpu") as f:
                for name in f.keys():
                    piece = f.get_slice(name)
                    found[name] = (piece.get_dtype(), tuple(piece.get_shape()), file)
        except Exception as exc:  # safetensors raises its own types for a damaged header
            raise ThinkpixError(f"{file}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    return found


def expected_tensors(folder: Path, model_class) -> dict[str, tuple[int, ...]]:
    """{name: shape} of the state dict that `model_class` builds from `folder/config.json` (meta device)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        with torch.device("meta"):
            model = model_class.from_config(config)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RuntimeError, AssertionError) as exc:
        raise ThinkpixError(f"{Path(folder) / 'config.json'}: does not build a {model_class.__name__} "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_weights(folder, model_class) -> None:
    """Refuse a model folder whose tensors do not match, in dtype or shape, what its config describes."""
    folder = Path(folder)
    found = header_tensors(folder)
    if not found:
        raise ThinkpixError(f"{folder}: no safetensors weights")
    for name, (dtype, _, file) in sorted(found.items()):
        if dtype not in FLOAT_DTYPES:
            raise ThinkpixError(f"{file}: tensor {name!r} is stored as {dtype}; model weights are floating point "
                                f"({', '.join(FLOAT_DTYPES)}): the file was edited or is not this model's")
    expected = expected_tensors(folder, model_class)
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(found) & set(expected) if found[k][1] != expected[k])
    if missing or extra or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(f"tensor {k!r} has shape {list(found[k][1])}, the config asks for {list(expected[k])}"
                         + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""))
        if missing:
            parts.append(f"{len(missing)} tensor(s) the config asks for are missing ({missing[0]!r}, ...)")
        if extra:
            parts.append(f"{len(extra)} tensor(s) the config does not know ({extra[0]!r}, ...)")
        raise ThinkpixError(f"{folder}: the weights disagree with config.json: {'; '.join(parts)}")


def check_pipeline_weights(folder) -> None:
    """`check_weights` on the transformer and VAE of a local diffusers pipeline folder (its model_index.json
    names their classes); other parts (text encoders, tokenizers) are left to their own loaders."""
    import diffusers

    folder = Path(folder)
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ThinkpixError(f"{folder / 'model_index.json'}: not readable ({exc})") from None
    for part in ("transformer", "vae"):
        entry = index.get(part) if isinstance(index, dict) else None
        sub = folder / part
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == "diffusers" and (sub / "config.json").is_file()
                and any(sub.glob("*.safetensors"))):
            continue  # not a diffusers model stored here (diffusers reports what it cannot find)
        model_class = getattr(diffusers, str(entry[1]), None)
        if model_class is None:
            raise ThinkpixError(f"{folder / 'model_index.json'}: {part} class {entry[1]!r} is not a diffusers model")
        check_weights(sub, model_class)
