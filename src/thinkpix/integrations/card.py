"""A short model card (`README.md`) for an adapter folder, so that the folder can be shared as a hub
repository: the base, where RSR sits (layers, M, T, rank, tau), the training data and steps, and
scores when known. Written by `save_rsr` from the adapter's record plus what the trainer knows."""

from __future__ import annotations

from pathlib import Path

CARD = "README.md"


def card_text(record: dict, info: dict | None = None) -> str:
    info = dict(info or {})
    cfg, base = record["config"], record.get("base") or {}
    base_name = base.get("name") or "unknown"
    lines = ["---", "library_name: thinkpix", "tags:", "- thinkpix", "- rsr", "- recursive-sparse-reasoning",
             f"- {record['backbone'].get('name', 'diffusers')}"]
    if base.get("name") and not Path(base["name"]).is_absolute():
        lines.append(f"base_model: {base['name']}")
    lines += ["---", "", f"# RSR adapter for {Path(base_name).name if Path(base_name).is_absolute() else base_name}",
              "", "Recursive Sparse Reasoning (RSR) adapter made with thinkpix: a sparse",
              "mixture of LoRA experts on the image stream's q/k/v, run for T latent steps inside the",
              "joint attention of the blocks below. The base weights are not included.", "",
              "| | |", "|---|---|",
              f"| base | `{base_name}` ({base.get('class', record['backbone'].get('class', '?'))}) |",
              f"| base transformer config sha256 | `{base.get('config_sha256', 'not recorded')}` |",
              f"| layers | {cfg['layers']} |", f"| experts M | {cfg['num_experts']} (top-{cfg['top_k']}) |",
              f"| latent steps T | {cfg['latent_steps']} |", f"| rank | {cfg['rank']} |",
              f"| gate temperature tau | {cfg['temperature']} |",
              f"| parameters | {record['num_parameters']:,} |"]
    for key in ("data", "steps", "resolution", "learning_rate", "mixed_precision", "scores"):
        if info.get(key) not in (None, ""):
            lines.append(f"| {key.replace('_', ' ')} | {info[key]} |")
    lines += ["", "## Use", "", "```python", "from diffusers import DiffusionPipeline",
              "from thinkpix import load_rsr", "", f"pipe = DiffusionPipeline.from_pretrained({base_name!r})",
              "load_rsr(pipe.transformer, 'THIS_FOLDER')",
              "image = pipe('a red bench left of a blue car', joint_attention_kwargs={'latent_steps': "
              f"{cfg['latent_steps']}}}).images[0]", "```", "",
              "`latent_steps: 0` gives the base model exactly. CLI: `thinkpix generate --pretrained BASE --adapter "
              "THIS_FOLDER --latent-steps T \"prompt\"`.", ""]
    return "\n".join(lines)


def write_card(folder: Path, record: dict, info: dict | None = None) -> Path:
    path = Path(folder) / CARD
    path.write_text(card_text(record, info))
    return path
