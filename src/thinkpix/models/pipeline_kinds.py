"""The two origins of a base (see `pipeline_base`): `BundledBase` (a thinkpix text-to-image folder) and
`DiffusersBase` (StableDiffusion3Pipeline incl. SD3.5, FluxPipeline, DiTPipeline). Both offer
    kind ("mmdit": captions, "dit": class names), name, transformer, modules(), check_resolution(res),
    encode_condition(captions) -> {name: (B, ...)}, encode_images((B, 3, H, W) in [-1, 1]) -> (B, C, h, w),
    loss(x0, cond, noise, u, weighting_scheme) -> scalar, generate(conditions, seed, ...) -> (N, H, W, 3) uint8.
`u` (B,) in (0, 1) is the timestep draw (SD3's density schemes); each base maps it to its own noise level.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ThinkpixError

PIPELINES = {"StableDiffusion3Pipeline": "sd3", "FluxPipeline": "flux", "DiTPipeline": "dit"}


def latent_steps_for(transformer: nn.Module, steps: int | None):
    """Deprecated: `with thinkpix.integrations.set_latent_steps(transformer, steps)` (this one is a no-op
    without RSR)."""
    from ..deprecation import deprecated

    deprecated("latent_steps_for", "thinkpix.integrations.set_latent_steps (a context manager)")
    return _steps_if_rsr(transformer, steps)


def _steps_if_rsr(transformer: nn.Module, steps: int | None):
    """`set_latent_steps` for a `with` block, a no-op without RSR."""
    from ..integrations.attach import set_latent_steps

    return set_latent_steps(transformer, steps if hasattr(transformer, "rsr") else None)


def _flow_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean over the batch of the per-sample (weighted) mean squared error, in fp32."""
    err = (pred.float() - target.float()).pow(2)
    if weights is not None:
        err = err * weights.float().view(-1, *([1] * (err.dim() - 1)))
    return err.reshape(err.shape[0], -1).mean(1).mean()


def _to_uint8(images) -> torch.Tensor:
    """(N, H, W, 3) floats in [0, 1] (numpy) -> uint8 tensor."""
    return torch.from_numpy((images * 255).round().clip(0, 255).astype("uint8"))


class BundledBase:
    """A bundled thinkpix text-to-image folder (`TextToImage`): the fast path of the tests."""

    kind = "mmdit"

    def __init__(self, model, name: str):
        self.model, self.name = model, name
        self.transformer = model.transformer
        self.resolution = model.meta["canvas"]

    @classmethod
    def load(cls, path: Path, device: torch.device, dtype: torch.dtype) -> "BundledBase":
        from .bundle import model_kind
        from .t2i import TextToImage

        if model_kind(path) != "mmdit":
            raise ThinkpixError(f"{path}: a class-conditional bundled model; fine-tune it in a trainer-config run, "
                                "`thinkpix finetune --pretrained MODEL --config configs/finetune_dit.yaml` (only "
                                "text-to-image bundles are bases of a flags run)")
        model = TextToImage.load(path).requires_grad_(False).to(device)
        if dtype != torch.float32:
            model.transformer.to(dtype)
        return cls(model, str(path))

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def check_resolution(self, resolution: int) -> None:
        if resolution != self.resolution:
            raise ThinkpixError(f"--resolution {resolution}: the bundled base {Path(self.name).name} works at "
                                f"{self.resolution}x{self.resolution} only")

    def encode_condition(self, captions: list[str]) -> dict[str, torch.Tensor]:
        tokens, pooled = self.model.encode_text(captions)  # (B, L, Dt), (B, Dt)
        return {"tokens": tokens, "pooled": pooled}

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        from . import autoencoder as ae_lib

        ae = self.model.autoencoder
        return ae_lib.encode(ae, pixels) if ae is not None else pixels  # (B, C, h, w)

    def loss(self, x0, cond, noise, u, weighting_scheme: str = "none") -> torch.Tensor:
        from diffusers.training_utils import compute_loss_weighting_for_sd3

        from .. import flow

        dtype = self.transformer.dtype
        x_t = flow.interpolate(x0, noise, u)  # (B, C, h, w)
        pred = self.model.velocity(x_t.to(dtype), u.to(dtype), cond["tokens"].to(dtype), cond["pooled"].to(dtype))
        return _flow_mse(pred, noise - x0, compute_loss_weighting_for_sd3(weighting_scheme, u))

    def generate(self, conditions: list, seed: int = 0, steps: int = 20, guidance: float = 3.0, batch_size: int = 64,
                 latent_steps: int | None = None, resolution: int | None = None, **kwargs) -> torch.Tensor:
        from .sampler import bundled_images

        self.check_resolution(resolution or self.resolution)

        with _steps_if_rsr(self.transformer, latent_steps):
            return bundled_images(self.model, list(conditions), seed=seed, steps=steps, guidance=guidance,
                                  batch_size=batch_size, **kwargs)


class DiffusersBase:
    """A diffusers pipeline, its own text encoders, VAE and scheduler. Every component is frozen."""

    def __init__(self, pipe, name: str, max_sequence_length: int = 77):
        self.pipe, self.name = pipe, name
        self.family = PIPELINES[type(pipe).__name__]  # sd3 | flux | dit
        self.kind = "dit" if self.family == "dit" else "mmdit"
        self.transformer = pipe.transformer
        self.max_sequence_length = max_sequence_length
        self.vae_scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        self.resolution = self._default_resolution()
        if self.family == "dit":
            from diffusers import DDPMScheduler

            self.train_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
            names = {}  # DiTPipeline keeps {name: id} (comma-separated synonyms split); the first name of each id
            for label, i in (getattr(pipe, "labels", None) or {}).items():
                names.setdefault(int(i), label)
            self.classes = [names[i] for i in sorted(names)]
            self.null_label = self.transformer.config.num_embeds_ada_norm  # DiTPipeline's unconditional class
        else:  # a copy of the scheduler's training sigmas (with its shift), as diffusers' training scripts do
            self.sigmas = pipe.scheduler.sigmas.detach().clone().float()

    @classmethod
    def load(cls, name_or_path: str, device: torch.device, dtype: torch.dtype) -> "DiffusersBase":
        from diffusers import DiffusionPipeline

        path = Path(name_or_path)
        if path.exists() and not (path / "model_index.json").is_file():
            raise ThinkpixError(f"{path}: neither a thinkpix model folder (thinkpix.json) nor a diffusers pipeline "
                                "folder (model_index.json)")
        if path.exists():
            from .weights_check import check_pipeline_weights

            check_pipeline_weights(path)  # dtypes and shapes of its transformer and VAE against their configs
        try:
            pipe = DiffusionPipeline.from_pretrained(str(path.resolve()) if path.exists() else name_or_path,
                                                     dtype=dtype, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ThinkpixError(f"{name_or_path}: could not load a diffusers pipeline from the folder or the local "
                                f"Hugging Face cache (nothing is downloaded): {str(exc).splitlines()[0]}") from None
        if type(pipe).__name__ not in PIPELINES:
            raise ThinkpixError(f"{name_or_path}: a {type(pipe).__name__}; supported: {', '.join(PIPELINES)}")
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        for module in pipe.components.values():
            if isinstance(module, nn.Module):
                module.requires_grad_(False).eval()
        return cls(pipe, str(path.resolve()) if path.exists() else name_or_path)

    def modules(self) -> dict[str, nn.Module]:
        return {k: m for k, m in self.pipe.components.items() if isinstance(m, nn.Module)}

    # ---- geometry -----------------------------------------------------------------------------------
    def _default_resolution(self) -> int:
        c = self.transformer.config
        if self.family == "flux":
            return 128 * self.vae_scale  # FluxPipeline's default_sample_size
        return c.sample_size * self.vae_scale

    def check_resolution(self, resolution: int) -> None:
        c = self.transformer.config
        if self.family == "dit" and resolution != self.resolution:
            raise ThinkpixError(f"--resolution {resolution}: this DiT works at {self.resolution} pixels only "
                                "(fixed position embeddings)")
        step = self.vae_scale * (2 if self.family == "flux" else c.patch_size)
        if resolution % step:
            raise ThinkpixError(f"--resolution {resolution} must be a multiple of {step} for this {self.family} base")

    # ---- conditioning and latents -------------------------------------------------------------------
    @torch.no_grad()
    def encode_condition(self, captions: list[str]) -> dict[str, torch.Tensor]:
        dev = self.pipe._execution_device
        if self.family == "dit":
            return {"class_labels": torch.tensor([self.label_of(c) for c in captions], device=dev)}
        if self.family == "sd3":
            embeds, _, pooled, _ = self.pipe.encode_prompt(
                prompt=list(captions), prompt_2=None, prompt_3=None, device=dev, do_classifier_free_guidance=False,
                max_sequence_length=self.max_sequence_length)
        else:
            embeds, pooled, _ = self.pipe.encode_prompt(prompt=list(captions), prompt_2=None, device=dev,
                                                        max_sequence_length=self.max_sequence_length)
        return {"prompt_embeds": embeds, "pooled_projections": pooled}  # (B, L, Dt), (B, Dp)

    def label_of(self, caption) -> int:
        """A class name (any of DiT's comma-separated synonyms), a class index, or '' (the null class)."""
        text = str(caption).strip()
        if text == "":
            return self.null_label
        if text.isdigit() and int(text) < self.null_label:
            return int(text)
        labels = getattr(self.pipe, "labels", {}) or {}
        if text not in labels:
            raise ThinkpixError(f"unknown class {text!r} for this DiT; e.g. {', '.join(sorted(labels)[:8])}")
        return int(labels[text])

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, C, H / s, W / s) normalised latents (the posterior mean)."""
        vae = self.pipe.vae
        latents = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mode()
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return ((latents - shift) * vae.config.scaling_factor).float() if self.family != "dit" \
            else (latents * vae.config.scaling_factor).float()

    # ---- training objective -------------------------------------------------------------------------
    def loss(self, x0, cond, noise, u, weighting_scheme: str = "logit_normal") -> torch.Tensor:
        """x0, noise (B, C, h, w) latents; u (B,) in (0, 1) -> the base's own training loss."""
        if self.family == "dit":
            return self._epsilon_loss(x0, cond, noise, u)
        from diffusers.training_utils import compute_loss_weighting_for_sd3

        sigmas = self.sigmas.to(u.device)
        sigma = sigmas[(u * (len(sigmas) - 1)).long().clamp(0, len(sigmas) - 2)]  # (B,), shifted like sampling
        s = sigma.view(-1, 1, 1, 1)
        x_t, target = (1 - s) * x0 + s * noise, noise - x0  # (B, C, h, w)
        pred = self._velocity(x_t, sigma, cond)
        return _flow_mse(pred, target, compute_loss_weighting_for_sd3(weighting_scheme, sigma))

    def _velocity(self, x_t, sigma, cond) -> torch.Tensor:
        dtype, t = self.transformer.dtype, self.transformer
        embeds, pooled = cond["prompt_embeds"].to(dtype), cond["pooled_projections"].to(dtype)
        if self.family == "sd3":
            return t(hidden_states=x_t.to(dtype), timestep=sigma * 1000, encoder_hidden_states=embeds,
                     pooled_projections=pooled, return_dict=False)[0]
        B, C, h, w = x_t.shape  # FLUX: 2x2 packed latents, (B, h/2 * w/2, 4C)
        packed = self.pipe._pack_latents(x_t.to(dtype), B, C, h, w)
        img_ids = self.pipe._prepare_latent_image_ids(B, h // 2, w // 2, x_t.device, dtype)
        txt_ids = torch.zeros(embeds.shape[1], 3, device=x_t.device, dtype=dtype)
        guidance = (torch.full((B,), 3.5, device=x_t.device, dtype=torch.float32)
                    if t.config.guidance_embeds else None)  # FLUX-dev's distilled guidance, as in diffusers' script
        out = t(hidden_states=packed, timestep=sigma, guidance=guidance, pooled_projections=pooled,
                encoder_hidden_states=embeds, txt_ids=txt_ids, img_ids=img_ids, return_dict=False)[0]
        return self.pipe._unpack_latents(out, h * self.vae_scale, w * self.vae_scale, self.vae_scale)

    def _epsilon_loss(self, x0, cond, noise, u) -> torch.Tensor:
        sched = self.train_scheduler
        steps = (u * sched.config.num_train_timesteps).long().clamp(0, sched.config.num_train_timesteps - 1)
        x_t = sched.add_noise(x0, noise, steps)  # (B, C, h, w)
        out = self.transformer(x_t.to(self.transformer.dtype), timestep=steps, class_labels=cond["class_labels"],
                               return_dict=False)[0]
        pred = out[:, : x0.shape[1]]  # learned-sigma DiTs predict (epsilon, variance)
        return _flow_mse(pred, noise, None)

    # ---- sampling -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, conditions: list, seed: int = 0, steps: int = 20, guidance: float = 3.0, batch_size: int = 64,
                 latent_steps: int | None = None, method: str = "euler", resolution: int | None = None,
                 **_) -> torch.Tensor:
        """Image i starts from the noise of seed + i (its own generator): independent of its batch-mates.
        `latent_steps` reaches RSR through `joint_attention_kwargs` (SD3, FLUX) or is set for the call (DiT)."""
        if method != "euler":
            raise ThinkpixError(f"--sampler {method}: a diffusers base samples with its own scheduler (use euler)")
        size = resolution or self.resolution
        out = []
        for start in range(0, len(conditions), batch_size):
            chunk = list(conditions[start: start + batch_size])
            gens = [torch.Generator("cpu").manual_seed(seed + start + i) for i in range(len(chunk))]
            common = dict(num_inference_steps=steps, guidance_scale=guidance, generator=gens, output_type="np")
            if self.family == "dit":
                with _steps_if_rsr(self.transformer, latent_steps):
                    images = self.pipe(class_labels=[self.label_of(c) for c in chunk], **common).images
            else:
                extra = {"joint_attention_kwargs": {"latent_steps": latent_steps}} if (
                    latent_steps is not None and hasattr(self.transformer, "rsr")) else {}
                images = self.pipe(prompt=chunk, height=size, width=size,
                                   max_sequence_length=self.max_sequence_length, **common, **extra).images
            out.append(_to_uint8(images))  # (b, H, W, 3)
        return torch.cat(out)
