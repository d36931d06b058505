"""Adapter fine-tuning on any base (`models.pipeline_base`): your captioned images or the shapes stream,
the base's own loss with SD3's timestep density and weighting schemes, mixed-precision autocast, and
optional caches of VAE latents and text embeddings. `PipelinePart` is the base's part of the one
fine-tune objective (`objectives.FinetuneObjective`, which owns the adapter); `pipeline_finetune` builds
both. `forward(step, indices)` builds its own deterministic batch (exact resume) and returns (loss, metrics).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from .. import flow
from .config import TrainConfig
from .data import sample_seed, world_batch
from .datasets import CaptionedImages, ImageOptions, load_captioned
from .objectives import FinetuneObjective
from .options import MIXED_PRECISION, TrainerOptions
from .seeding import seed_everything



@dataclass
class PipelineOptions(TrainerOptions):
    """What `thinkpix finetune --pretrained` adds to the trainer's config (flag names as diffusers' scripts):
    the trainer's options (`TrainerOptions`) and the data, loss and validation options of the objective."""

    pretrained: str = ""
    data: str = "shapes"  # an imagefolder, a saved `datasets` dataset, or `shapes` (the shapes-world stream)
    caption_column: str = "text"
    image_column: str = "image"
    resolution: int = 0  # 0: the base's own
    center_crop: bool = False
    random_flip: bool = False
    weighting_scheme: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    mode_scale: float = 1.29
    lr_scheduler: str = "constant"
    gate_learning_rate: float = 0.0  # 0: the learning rate
    validate_at_end: bool = True
    validation_prompt: str = ""
    num_validation_images: int = 4
    validation_steps: int = 0
    validation_inference_steps: int = 20
    validation_guidance: float = 3.0
    cache_latents: bool = False
    cache_text_embeddings: bool = False
    max_sequence_length: int = 77
    device: str = "auto"
    dtype: str = "auto"

    def check(self) -> None:
        super().check()  # every option by its flag's declaration (`declarations.FINETUNE_FLAGS`), the packages

    def to_dict(self) -> dict:
        return asdict(self)


def pipeline_finetune(cfg: TrainConfig, opts: PipelineOptions, base, rank: int = 0) -> FinetuneObjective:
    """The fine-tune objective of a flags run: the adapter on `base` (bundled or diffusers), its part a
    `PipelinePart` (the base's loss, the data, the validation)."""
    part = PipelinePart(cfg, opts, base, rank)
    seed_everything(cfg.seed)  # LoRA's A (peft draws it from torch's generator) follows the seed, not the process
    objective = FinetuneObjective(cfg, part)
    part.load_data()  # the data and its caches, once the adapter is attached
    return objective


class PipelinePart(nn.Module):
    """A frozen base (bundled or diffusers) as the part of `FinetuneObjective`: the base's own loss on your
    images or the shapes stream, the caches, the validation images and the adapter's model card."""

    def __init__(self, cfg: TrainConfig, opts: PipelineOptions, base, rank: int = 0):
        super().__init__()
        self.cfg, self.opts, self.base, self.rank = cfg, opts, base, rank
        self.parts = nn.ModuleDict(base.modules())  # registered: .to(device), DDP and state see them
        self.resolution = opts.resolution or base.resolution
        base.check_resolution(self.resolution)
        self.autocast_dtype = MIXED_PRECISION[opts.mixed_precision]
        self.images = None
        self.latent_cache: dict[int, torch.Tensor] = {}
        self.text_cache: dict[str, dict[str, torch.Tensor]] = {}

    def load_data(self) -> None:
        """The data set, and the caches of its latents and captions when asked for."""
        cfg, opts = self.cfg, self.opts
        if opts.data != "shapes":
            ds = load_captioned(opts.data, opts.caption_column, opts.image_column)
            self.images = CaptionedImages(ds, ImageOptions(self.resolution, opts.center_crop, opts.random_flip,
                                                           cfg.cond_dropout), opts.caption_column,
                                          opts.image_column, cfg.seed, per_row_crop=opts.cache_latents)
        if opts.cache_latents and self.images is not None:
            self._fill_latent_cache()
        if opts.cache_text_embeddings:
            captions = [""] + ([self.images.caption(i) for i in range(len(self.images))] if self.images else [])
            self._fill_text_cache(list(dict.fromkeys(captions)))

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def adapted(self) -> nn.Module:
        return self.base.transformer

    def optimiser_step(self, micro_step: int) -> int:
        return micro_step // self.opts.gradient_accumulation_steps  # micro-step ids: step * acc + k

    # options that shape the weights (the rest: where and how often to look, where to log, the device)
    SHAPING = ("caption_column", "image_column", "center_crop", "random_flip", "weighting_scheme", "logit_mean",
               "logit_std", "mode_scale", "mixed_precision", "gradient_accumulation_steps", "lr_scheduler",
               "lr_warmup_steps", "gate_learning_rate", "use_8bit_adam", "cache_latents", "cache_text_embeddings",
               "max_sequence_length", "dtype")

    def request(self) -> dict:
        """What this fine-tune adds to its run's request (`training.request`): the data's identity, the
        resolution and the options that shape the weights."""
        from .request import data_identity

        fields = {"data": self.opts.data if self.images is None else data_identity(self.opts.data),
                  "resolution": self.resolution, **{k: getattr(self.opts, k) for k in self.SHAPING}}
        return {"fields": fields, "names": {} if self.images is None else {"data": self.opts.data}}

    def run_files(self) -> dict[str, str]:
        """Files the trainer writes into the run folder once it holds the run: the options as given, and
        the validation prompt beside its images."""
        import json

        files = {"pipeline_options.json": json.dumps(self.opts.to_dict(), indent=1) + "\n"}
        if self.opts.validation_prompt:
            files[f"{self.preview_folder}/prompt.txt"] = self.opts.validation_prompt + "\n"
        return files

    def train(self, mode: bool = True):
        """Only the transformer follows train/eval (RSR's random depth, dropout); encoders stay in eval."""
        nn.Module.train(self, False)
        self.base.transformer.train(mode)
        return self

    # ---- caches -------------------------------------------------------------------------------------
    def _fill_latent_cache(self) -> None:
        for row in tqdm(range(len(self.images)), desc="caching latents", unit="image", disable=self.rank != 0):
            pixels = self.images.pixels(row, rng=None)[None]  # (1, 3, R, R), the row's own crop and flip
            self.latent_cache[row] = self.base.encode_images(pixels.to(self._device)).cpu()[0]

    def _fill_text_cache(self, captions: list[str]) -> None:
        for i in tqdm(range(0, len(captions), 16), desc="caching text embeddings", unit="batch",
                      disable=self.rank != 0):
            chunk = captions[i: i + 16]
            cond = self.base.encode_condition(chunk)
            for j, c in enumerate(chunk):
                self.text_cache[c] = {k: v[j].cpu() for k, v in cond.items()}

    @property
    def _device(self) -> torch.device:
        return next(self.base.transformer.parameters()).device

    # ---- one batch ----------------------------------------------------------------------------------
    def batch(self, step: int, indices) -> tuple[torch.Tensor, list[str], list[int]]:
        """-> clean latents x0 (B, C, h, w), captions ('' where dropped), per-sample seeds."""
        seeds = [sample_seed(self.cfg.seed, step, j) for j in indices]
        if self.images is None:  # the shapes stream, upsampled (nearest) to the base's resolution
            captions, images, _ = world_batch(self.cfg.seed, step, indices, 32, self.cfg.cond_dropout,
                                              self.cfg.data_mix)
            pixels = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (B, 3, 32, 32)
            pixels = nn.functional.interpolate(pixels, size=self.resolution, mode="nearest")
            return self.base.encode_images(pixels.to(self._device)).float(), captions, seeds
        rows, captions, pixels = [], [], []
        for j in indices:
            row, caption = self.images.pick(step, j, self.cfg.batch_size)
            rows.append(row)
            captions.append(caption)
            if row not in self.latent_cache:
                pixels.append(self.images.pixels(row, self.images.rng(step, j)))
        if self.opts.cache_latents:
            return torch.stack([self.latent_cache[r] for r in rows]).to(self._device), captions, seeds
        return self.base.encode_images(torch.stack(pixels).to(self._device)).float(), captions, seeds

    def condition(self, captions: list[str]) -> dict[str, torch.Tensor]:
        missing = [c for c in dict.fromkeys(captions) if c not in self.text_cache]
        if not self.opts.cache_text_embeddings or missing:
            cond = self.base.encode_condition(captions)
            if self.opts.cache_text_embeddings:
                for j, c in enumerate(captions):
                    self.text_cache.setdefault(c, {k: v[j].cpu() for k, v in cond.items()})
            return cond
        return {k: torch.stack([self.text_cache[c][k] for c in captions]).to(self._device)
                for k in self.text_cache[captions[0]]}

    def timesteps(self, seeds: list[int]) -> torch.Tensor:
        """(B,) draws in (0, 1) from the weighting scheme's density, one generator per sample."""
        from diffusers.training_utils import compute_density_for_timestep_sampling

        o = self.opts
        return torch.cat([compute_density_for_timestep_sampling(
            o.weighting_scheme, 1, o.logit_mean, o.logit_std, o.mode_scale,
            generator=torch.Generator().manual_seed(s ^ 0x5DEECE66D)) for s in seeds])

    def forward(self, step: int, indices):
        # RSR's own random numbers (Gumbel noise, random depth) from the step's seed: exact resume
        torch.manual_seed(sample_seed(self.cfg.seed + 1_000_003 * (self.rank + 1), step, 0))
        x0, captions, seeds = self.batch(step, indices)  # (B, C, h, w)
        cond = self.condition(captions)
        dev = self._device
        noise = flow.seeded_noise(tuple(x0.shape[1:]), seeds).to(dev)  # (B, C, h, w)
        u = self.timesteps(seeds).to(dev)  # (B,)
        with self.autocast():
            loss = self.base.loss(x0, cond, noise, u, self.opts.weighting_scheme)
        return loss, {}

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self._device.type, dtype=self.autocast_dtype)

    # ---- validation and export ----------------------------------------------------------------------
    preview_folder = "validation"  # the trainer's previews: RUN/validation/step_NNNNNNN.png

    def preview(self, step: int) -> torch.Tensor | None:
        """The validation images (None without a --validation_prompt)."""
        return self.validation_images() if self.opts.validation_prompt else None

    @torch.no_grad()
    def validation_images(self) -> torch.Tensor:
        """`num_validation_images` of the validation prompt (seeds 0..n-1) at the adapter's T: (n, H, W, 3)."""
        o = self.opts
        with self.autocast():
            return self.base.generate([o.validation_prompt] * o.num_validation_images, seed=0,
                                      steps=o.validation_inference_steps, guidance=o.validation_guidance,
                                      resolution=self.resolution)

    def save_adapter(self, adapter, path: Path) -> None:
        """The adapter folder; an RSR adapter's model card names the data, steps, resolution and precision."""
        from ..integrations.adapters import save_rsr

        if adapter.method != "rsr":
            adapter.save(self.base.transformer, path)
            return
        data = "shapes-world stream" if self.images is None else f"{self.opts.data} ({len(self.images)} images)"
        save_rsr(self.base.transformer, path, base_name=self.base.name,
                 card={"data": data, "steps": self.cfg.steps, "resolution": self.resolution,
                       "learning_rate": self.cfg.optim.lr, "mixed_precision": self.opts.mixed_precision})
