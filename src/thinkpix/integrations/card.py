"""A short model card (`README.md`) for an adapter folder, so that the folder can be shared as a hub
repository: the base, where RSR sits (layers, M, T, rank, tau), the training data and steps, and
scores when known. Written by `save_rsr` from the adapter's record plus what the trainer knows."""

from __future__ import annotations

from pathlib import Path

CARD = "README.md"
LICENSE_KEYS = ("license", "license_name", "license_link")  # carried over from the base's own card


def hub_id(name: str) -> str | None:
    """The hub id of a base named `name`: the name itself when it is one (owner/name, not a local folder), the
    repository of a snapshot folder in the Hugging Face cache (models--OWNER--NAME/snapshots/REV), else None."""
    import re

    path = Path(name)
    for part in path.parts:
        found = re.fullmatch(r"models--([\w.-]+)--([\w.-]+)", part)
        if found:
            return f"{found.group(1)}/{found.group(2)}"
    if not path.is_absolute() and not path.exists() and re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name):
        return name
    return None


def base_card_fields(name: str) -> dict:
    """`license` (and `license_name`, `license_link`) from the front matter of the base's own README.md: in its
    folder, or in the local Hugging Face cache for a hub id; {} when there is no card or no license in it."""
    import yaml

    card = Path(name) / CARD if name else None
    if not (card and card.is_file()) and hub_id(name):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(hub_id(name), CARD)
            card = Path(cached) if isinstance(cached, str) else None
        except Exception:  # no huggingface_hub, a malformed cache: no license known
            card = None
    if not (card and card.is_file()):
        return {}
    text = card.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    try:
        meta = yaml.safe_load(text.split("---", 2)[1])
    except (yaml.YAMLError, IndexError):
        return {}
    return {k: meta[k] for k in LICENSE_KEYS if isinstance(meta, dict) and isinstance(meta.get(k), str)}


def front_matter(base: dict, library: str, tags: list[str], pipeline_tag: str) -> list[str]:
    """The card's YAML header as the Hub reads it: library_name, pipeline_tag, tags, base_model (the hub id
    where known) and the base's license."""
    lines = ["---", f"library_name: {library}", f"pipeline_tag: {pipeline_tag}", "tags:", *[f"- {t}" for t in tags]]
    repo = hub_id(base.get("name") or "")
    if repo:
        lines.append(f"base_model: {repo}")
    lines += [f"{k}: {v}" for k, v in base_card_fields(base.get("name") or "").items()]
    return lines + ["---"]


def pipeline_tag(backbone: str | None) -> str:
    """The Hub's task of an adapter's base: a class-conditional DiT draws images without a prompt."""
    return "unconditional-image-generation" if backbone == "dit" else "text-to-image"


def card_text(record: dict, info: dict | None = None) -> str:
    info = dict(info or {})
    cfg, base = record["config"], record.get("base") or {}
    base_name = base.get("name") or "unknown"
    backbone = record["backbone"].get("name", "diffusers")
    lines = front_matter(base, "thinkpix", ["thinkpix", "rsr", "recursive-sparse-reasoning", backbone],
                         pipeline_tag(backbone))
    lines += ["", f"# RSR adapter for {Path(base_name).name if Path(base_name).is_absolute() else base_name}",
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
           "THIS_FOLDER --latent_steps T \"prompt\"`.")
    if (Path(base_name) / "thinkpix.json").is_file() or not base_name or base_name == "unknown" or "/" not in base_name \
            and not Path(base_name).exists():
        return [f"`thinkpix generate --model {base_name} --adapter THIS_FOLDER --latent_steps {latent_steps} "
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
    lines = front_matter(base, "diffusers", ["thinkpix", "lora", "sft-baseline"],
                         pipeline_tag("dit" if "DiT" in str(base.get("class")) else None))
    lines += ["", f"# LoRA adapter (thinkpix SFT baseline) for {Path(base_name).name}", "",
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
