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
    lines += ["", "## Use", ""] + usage(record["backbone"].get("name"), base_name, cfg["latent_steps"])
    return "\n".join(lines)


def usage(backbone: str | None, base_name: str, latent_steps: int) -> list[str]:
    """The card's usage section: a Python snippet that runs as written once THIS_FOLDER is the adapter's
    folder (tested for every backbone), then the CLI. A DiT pipeline takes class labels and no
    attention kwargs, so its latent steps are set on the transformer; a thinkpix model folder as base is
    not a diffusers pipeline, so its card shows the CLI only."""
    cli = ("`latent_steps: 0` gives the base model exactly. CLI: `thinkpix generate --pretrained BASE --adapter "
           "THIS_FOLDER --latent-steps T \"prompt\"`.")
    if (Path(base_name) / "thinkpix.json").is_file() or not base_name or base_name == "unknown" or "/" not in base_name \
            and not Path(base_name).exists():
        return [f"`thinkpix generate --model {base_name} --adapter THIS_FOLDER --latent-steps {latent_steps} "
                "\"a red circle\"` (the base is a thinkpix model folder; 0 latent steps give the base exactly).", ""]
    head = ["```python", "from diffusers import DiffusionPipeline", "", "from thinkpix import load_rsr"]
    if backbone == "dit":
        return head + ["from thinkpix.integrations.attach import set_latent_steps", "",
                       f"pipe = DiffusionPipeline.from_pretrained({base_name!r})",
                       "load_rsr(pipe.transformer, 'THIS_FOLDER')",
                       f"set_latent_steps(pipe.transformer, {latent_steps})  # DiTPipeline takes no attention kwargs",
                       "image = pipe(class_labels=[0]).images[0]", "```", "", cli.replace('\"prompt\"', "--class NAME"),
                       ""]
    return head + ["", f"pipe = DiffusionPipeline.from_pretrained({base_name!r})",
                   "load_rsr(pipe.transformer, 'THIS_FOLDER')",
                   "image = pipe('a red bench left of a blue car', joint_attention_kwargs={'latent_steps': "
                   f"{latent_steps}}}).images[0]", "```", "", cli, ""]


def lora_card_text(record: dict) -> str:
    """The card of a LoRA adapter (the SFT baseline): its base, blocks and rank, and how diffusers loads it
    (`load_lora_weights`; the weights are in diffusers' peft format)."""
    base = record.get("base") or {}
    base_name = base.get("name") or "unknown"
    lines = ["---", "library_name: diffusers", "tags:", "- thinkpix", "- lora", "- sft-baseline"]
    if base.get("name") and not Path(base["name"]).is_absolute():
        lines.append(f"base_model: {base['name']}")
    lines += ["---", "", f"# LoRA adapter (thinkpix SFT baseline) for {Path(base_name).name}", "",
              "A plain LoRA on the image stream's q/k/v of the blocks below, made with thinkpix as the",
              "parameter-matched baseline of an RSR adapter. The base weights are not included.", "",
              "| | |", "|---|---|", f"| base | `{base_name}` ({base.get('class', '?')}) |",
              f"| base transformer config sha256 | `{base.get('config_sha256', 'not recorded')}` |",
              f"| layers | {record['layers']} |", f"| rank | {record['rank']} (alpha {record['alpha']}) |",
              f"| parameters | {record['num_parameters']:,} |", "", "## Use", "",
              "With diffusers (SD3, FLUX): `pipe.load_lora_weights('THIS_FOLDER')`. With thinkpix: `thinkpix generate "
              "--pretrained BASE --adapter THIS_FOLDER \"prompt\"` (the base is checked against the one recorded).", ""]
    return "\n".join(lines)


def write_card(folder: Path, record: dict, info: dict | None = None) -> Path:
    path = Path(folder) / CARD
    path.write_text(card_text(record, info))
    return path
