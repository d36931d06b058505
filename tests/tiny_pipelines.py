"""Tiny random diffusers pipelines (SD3, SD3.5-style, FLUX, DiT) saved in diffusers' folder format,
with tokenizers made locally (no hub access), and a tiny captioned `imagefolder` data set.
Not a test module: imported by the pipeline tests."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import torch

CHARS = string.ascii_lowercase + string.digits + ".,'-"


def clip_tokenizer():
    """A character-level CLIP BPE tokenizer (every character and character</w> in the vocabulary)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def t5_tokenizer(tmp: Path):
    """A character-level T5 (Unigram) tokenizer built with the `tokenizers` library."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in CHARS] + [("\u2581" + c, -3.0) for c in CHARS]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tmp.mkdir(parents=True, exist_ok=True)
    tok.save(str(tmp / "tokenizer.json"))
    return T5TokenizerFast(tokenizer_file=str(tmp / "tokenizer.json"), extra_ids=0, pad_token="<pad>",
                           eos_token="</s>", unk_token="<unk>", model_max_length=77)


def clip_encoder(cls_name: str, seed: int, hidden: int = 16, projection: int = 16):
    import transformers
    from transformers import CLIPTextConfig

    torch.manual_seed(seed)
    cfg = CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=hidden, intermediate_size=32,
                         num_attention_heads=2, num_hidden_layers=2, vocab_size=2 + 2 * len(CHARS),
                         max_position_embeddings=77, projection_dim=projection, hidden_act="gelu")
    return getattr(transformers, cls_name)(cfg).eval()


def t5_encoder(seed: int, d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=4 + 2 * len(CHARS), d_model=d_model, d_kv=8, d_ff=32, num_layers=2, num_heads=2,
                   relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5EncoderModel(cfg).eval()


def vae(seed: int, latent_channels: int = 4):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)  # two down-samplings: a 32-pixel image is an 8x8 latent
    return AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8, 8, 8),
                         down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                         layers_per_block=1, latent_channels=latent_channels, norm_num_groups=4, sample_size=32,
                         shift_factor=0.06, scaling_factor=1.5).eval()


def sd3_pipeline(tmp: Path, sd35: bool = False, seed: int = 0, **transformer_over):
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    torch.manual_seed(seed)
    extra = dict(dual_attention_layers=(0,), qk_norm="rms_norm") if sd35 else {}
    transformer = SD3Transformer2DModel(**dict(dict(
        sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=3, attention_head_dim=8,
        num_attention_heads=4, joint_attention_dim=32, caption_projection_dim=32, pooled_projection_dim=32,
        pos_embed_max_size=16, **extra), **transformer_over)).eval()
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae(seed + 1),
        text_encoder=clip_encoder("CLIPTextModelWithProjection", seed + 2), tokenizer=clip_tokenizer(),
        text_encoder_2=clip_encoder("CLIPTextModelWithProjection", seed + 3), tokenizer_2=clip_tokenizer(),
        text_encoder_3=t5_encoder(seed + 4), tokenizer_3=t5_tokenizer(tmp / "t5tok"))


def flux_pipeline(tmp: Path, seed: int = 0):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=2, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=16, axes_dims_rope=(4, 4, 8)).eval()
    return FluxPipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae(seed + 1),
                        text_encoder=clip_encoder("CLIPTextModel", seed + 2), tokenizer=clip_tokenizer(),
                        text_encoder_2=t5_encoder(seed + 4), tokenizer_2=t5_tokenizer(tmp / "t5tok"))


DIT_CLASSES = {0: "red circle", 1: "blue square", 2: "bench", 3: "green triangle"}  # DiTPipeline: 1000 classes, null = 1000


def dit_pipeline(tmp: Path, seed: int = 0):
    from diffusers import DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(seed)
    transformer = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                        num_layers=3, sample_size=8, patch_size=2, num_embeds_ada_norm=1000,
                                        norm_type="ada_norm_zero").eval()
    return DiTPipeline(transformer=transformer, vae=vae(seed + 1), scheduler=DDIMScheduler(),
                       id2label=dict(DIT_CLASSES))


BUILDERS = {"sd3": sd3_pipeline, "sd35": lambda tmp, seed=0: sd3_pipeline(tmp, True, seed), "flux": flux_pipeline,
            "dit": dit_pipeline}


def save_pipeline(kind: str, folder: Path, seed: int = 0) -> Path:
    """Build the tiny `kind` pipeline and save it in diffusers' folder format at `folder`."""
    pipe = BUILDERS[kind](folder.parent / f".{folder.name}-tmp", seed=seed)
    pipe.save_pretrained(folder, safe_serialization=True)
    if kind == "dit":  # as in facebook/DiT-* repos: the class names live in model_index.json
        index = json.loads((folder / "model_index.json").read_text())
        index["id2label"] = {str(k): v for k, v in DIT_CLASSES.items()}
        (folder / "model_index.json").write_text(json.dumps(index, indent=1))
    return folder


def imagefolder(folder: Path, n: int = 20, size: int = 40, seed: int = 0, csv: bool = False) -> Path:
    """`n` random captioned PNGs with HF imagefolder metadata (file_name + text; a `label` class name)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img = (rng.random((size, size + 8, 3)) * 255).astype(np.uint8)  # not square: exercises the crop
        Image.fromarray(img).save(folder / f"img_{i:03d}.png")
        label = DIT_CLASSES[i % len(DIT_CLASSES)]
        rows.append({"file_name": f"img_{i:03d}.png", "text": f"a photo of a {label} number {i}", "label": label})
    if csv:
        lines = ["file_name,text,label"] + [f"{r['file_name']},{r['text']},{r['label']}" for r in rows]
        (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    else:
        (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder
