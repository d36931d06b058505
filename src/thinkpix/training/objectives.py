"""What a training run optimises. An objective is an `nn.Module` whose `forward(step, indices)`
makes its own deterministic batch and returns (loss, metrics); the trainer wraps it in DDP.

- `AutoencoderObjective`: trains the small AutoencoderKL on world renders.
- `FlowObjective`: rectified-flow training of the text-to-image MMDiT (from scratch).
- `ClassFlowObjective`: the same for the class-conditional DiT (labels dropped once per sample for CFG).
- `FinetuneObjective`: the one fine-tune objective, an adapter (RSR or LoRA) on any frozen base; the base's
  loss and data are its part (`FrozenFlow` / `FrozenClassFlow` here for the bundled models, the lake's
  and `pipeline_objective.PipelinePart` elsewhere); only the adapter trains.
- `FurtherTrainingObjective`: the text-to-image base's transformer trained further (all weights).
- `FeatureObjective`: the feature network of the class track's Fréchet distance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import flow
from ..bundled import resolve_model
from ..errors import ThinkpixError
from ..files import write_manifest
from ..integrations.adapters import save_rsr
from ..integrations.attach import attach_rsr, collect_rsr_outputs, detach_rsr, get_rsr
from ..models import autoencoder as ae_lib
from ..models.bundle import OWN_RSR, model_kind
from ..models.c2i import ClassToImage
from ..models.features import build_feature_net, feature_loss, save_feature_net
from ..models.t2i import TextToImage
from ..rsr.config import RSRConfig
from ..rsr.outputs import total_aux_loss
from ..sampling import generate_class_images, generate_images
from ..worlds.shapes.prompts import TASKS, random_metadata
from .config import TrainConfig, to_dict
from .data import class_batch, world_batch
from .seeding import seed_everything


def _noise_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed ^ 0x5DEECE66D)


class AutoencoderObjective(nn.Module):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        self.autoencoder = ae_lib.build_autoencoder(cfg.model.size, cfg.model.canvas)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def forward(self, step: int, indices: range):
        _, images, seeds = world_batch(self.cfg.seed, step, indices, self.cfg.model.canvas, 0.0)
        x = ae_lib.images_to_unit(images)  # (B, 3, H, W)
        return ae_lib.autoencoder_loss(self.autoencoder, x, _noise_generator(seeds[0]))

    @torch.no_grad()
    def preview(self, step: int, n: int = 16) -> torch.Tensor:
        """Held-out renders followed by their reconstructions: (2n, H, W, 3) uint8."""
        _, images, _ = world_batch(self.cfg.seed + 1_000_003, step, range(n), self.cfg.model.canvas, 0.0)
        x = ae_lib.images_to_unit(images)
        recon = ae_lib.decode(self.autoencoder, ae_lib.encode(self.autoencoder, x))
        return torch.cat([images, ae_lib.unit_to_images(recon)])

    def export(self, path: Path) -> None:
        """Fit the latent normalisation on 512 renders, then save in diffusers format."""
        _, images, _ = world_batch(self.cfg.seed + 7, 0, range(512), self.cfg.model.canvas, 0.0)
        ae_lib.fit_latent_normalisation(self.autoencoder, ae_lib.images_to_unit(images))
        self.autoencoder.save_pretrained(path, safe_serialization=True)
        write_manifest(path)


class FlowObjective(nn.Module):
    """Rectified flow: noise and timestep per sample from the sample's own seed, velocity target.
    Subclasses change only the model they build, the batch and its conditioning, and the preview."""

    def __init__(self, cfg: TrainConfig, model: TextToImage | ClassToImage | None = None):
        super().__init__()
        self.cfg = cfg
        self.rsr_in = False
        self.model = model or self.create_model(cfg.model)
        if model is None and cfg.model.rsr:
            self.train_recursion_in(cfg.model.rsr)

    def train_recursion_in(self, spec: str) -> None:
        """RSR attached from the start with the base weights trainable (`model.rsr`, the lake's `lake.rsr`):
        recursion trained in, not fine-tuned on; its auxiliary losses join the loss; exported inside the
        model folder (`export`)."""
        attach_rsr(self.model.transformer, RSRConfig.parse(spec), freeze_base=False)
        self.model.train()
        self.rsr_in = True

    def images_to_x0(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.images_to_x0(images)

    @staticmethod
    def create_model(m) -> TextToImage:
        return TextToImage.create(m.size, m.space, m.text_encoder, m.canvas, m.autoencoder)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {f"model.{n}": p for n, p in self.model.trainable_parameters().items()}

    def batch(self, step: int, indices: range) -> tuple[torch.Tensor, list[int], tuple[torch.Tensor, ...]]:
        """-> images (B, H, W, 3) uint8, seeds (B,), the velocity's conditioning: (tokens (B, L, Dt), pooled (B, Dt))."""
        prompts, images, seeds = world_batch(
            self.cfg.seed, step, indices, self.cfg.model.canvas, self.cfg.cond_dropout, self.cfg.data_mix,
            self.cfg.data_pool)
        return images, seeds, tuple(self.model.encode_text(prompts))

    def forward(self, step: int, indices: range):
        images, seeds, conditions = self.batch(step, indices)
        x0 = self.images_to_x0(images)  # (B, C, h, w)
        noise = flow.seeded_noise(tuple(x0.shape[1:]), seeds)  # (B, C, h, w)
        t = torch.cat([flow.sample_timesteps(1, _noise_generator(s)) for s in seeds])  # (B,)
        device = next(self.model.transformer.parameters()).device
        x0, noise, t, *conditions = (v.to(device) for v in (x0, noise, t, *conditions))

        def velocity(x_t, tt):
            return self.model.velocity(x_t, tt, *conditions)

        loss = flow.flow_loss(velocity, x0, noise, t, self.loss_weight(x0, conditions))
        if self.rsr_in:
            loss = loss + total_aux_loss(collect_rsr_outputs(self.model.transformer))
        return loss, {}

    def loss_weight(self, x0: torch.Tensor, conditions: list[torch.Tensor]) -> torch.Tensor | None:
        """Per-pixel weights of the flow loss for clean samples x0 (B, C, h, w) (None: the plain mean); the
        lake's `path_weight` overrides."""
        return None

    def validate(self, step: int) -> dict:
        """The held-out validation loss (`training.heldout`) of the current weights."""
        from .heldout import validation_loss, validation_set_for

        if getattr(self, "_validation_set", None) is None:
            self._validation_set = validation_set_for(self.model, self.cfg.validation_samples)
        return {"val_loss": validation_loss(self.model, self._validation_set)}

    @torch.no_grad()
    def preview(self, step: int, n: int = 16) -> torch.Tensor:
        """Samples for fixed prompts (one per task, cycling): (n, H, W, 3) uint8."""
        rng = np.random.default_rng(0)
        prompts = [random_metadata(TASKS[i % len(TASKS)], rng)["prompt"] for i in range(n)]
        return generate_images(self.model, prompts, seed=0, steps=20, guidance=3.0)

    def export(self, path: Path) -> None:
        """The model folder; RSR trained in goes to PATH/rsr, an adapter folder loaded with the model."""
        if not self.rsr_in:
            self.model.save(path)
            return
        transformer = self.model.transformer
        rsr = detach_rsr(transformer)
        save_rsr(rsr, Path(path) / OWN_RSR)  # first: the model folder's checksums.json (written last) covers it
        self.model.save(path, extra_meta={"rsr": OWN_RSR})
        attach_rsr(transformer, rsr.config, freeze_base=False).load_state_dict(rsr.state_dict())


class ClassFlowObjective(FlowObjective):
    """Rectified flow for the class-conditional DiT. A sample's label is replaced by the DiT's null
    class with probability `cond_dropout`, decided once per sample from its own seed (the model's
    internal per-block label dropout is off, see `thinkpix.models.c2i`)."""

    @staticmethod
    def create_model(m) -> ClassToImage:
        return ClassToImage.create(m.size, m.space, m.canvas, m.autoencoder)

    def batch(self, step: int, indices: range) -> tuple[torch.Tensor, list[int], tuple[torch.Tensor, ...]]:
        """-> images (B, H, W, 3) uint8, seeds (B,), the velocity's conditioning: (labels (B,),)."""
        labels, images, dropped, seeds = class_batch(
            self.cfg.seed, step, indices, self.cfg.model.canvas, self.cfg.cond_dropout, self.cfg.data_mix,
            self.cfg.data_pool)
        return images, seeds, (torch.where(dropped, self.model.null_label, labels),)

    @torch.no_grad()
    def preview(self, step: int, n: int = 24) -> torch.Tensor:
        """One sample per class, in class order (cycling): (n, H, W, 3) uint8."""
        labels = [i % len(self.model.classes) for i in range(n)]
        return generate_class_images(self.model, labels, seed=0, steps=20, guidance=3.0)


class PooledLatents:
    """Mixin for training on a frozen autoencoder: with a fixed data pool each image is encoded once
    (memoised, one image at a time, so a sample's x0 never depends on its batch-mates or on a resume)."""

    def images_to_x0(self, images: torch.Tensor) -> torch.Tensor:
        if not self.cfg.data_pool or self.model.autoencoder is None:
            return super().images_to_x0(images)
        cache = self.__dict__.setdefault("_x0_cache", {})
        keys = [im.numpy().tobytes() for im in images]
        for i, k in enumerate(keys):
            if k not in cache:
                cache[k] = self.model.images_to_x0(images[i : i + 1])[0]  # (C, h, w)
        return torch.stack([cache[k] for k in keys])  # (B, C, h, w)


class FinetuneObjective(nn.Module):
    """The one fine-tune objective: a frozen base with an adapter (RSR experts + gates, or LoRA) attached to
    its transformer; only the adapter trains. What differs per base is its `part`, an `nn.Module` whose
    forward(step, indices) is the frozen base's own (loss, metrics) on its own deterministic batch:

    - `FrozenFlow` / `FrozenClassFlow`: a bundled text-to-image model / class-conditional DiT on the shapes
      world's stream, the project's rectified flow (a trainer-config run, `build_objective`);
    - `worlds.lake.training.LakeFlowObjective`: a trained lake model (`build_lake_objective`);
    - `pipeline_objective.PipelinePart`: any base behind `models.pipeline_base` on your images or the
      shapes stream, with diffusers' timestep densities and caches (a flags run, `pipeline_finetune`).

    The adapter half is this class's: RSR's auxiliary losses (zero unless their weights are set) join the
    part's loss; routing statistics of the last forward are reported as metrics; RSR's gates and experts are
    two optimiser groups (learning-rate multipliers `finetune.gate_lr_mult`, `expert_lr_mult`); an annealed
    temperature (`temperature_end`) is set before every step; validation adds RSR's instruments. Every other
    attribute (the model, previews, the run's request and files, the resolution, ...) is the part's.
    Parameter names (checkpoints, optimiser groups) are the part's own, so a run resumes across this class."""

    def __init__(self, cfg: TrainConfig, part: nn.Module):
        from ..integrations.methods import attach_adapter

        super().__init__()
        self.cfg = cfg
        self.part = part
        self.adapter = attach_adapter(self.adapted(), cfg.finetune)
        self.train()

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)  # parameters, buffers, submodules (`part`)
        except AttributeError:
            if name == "part" or "part" not in self.__dict__.get("_modules", {}):
                raise
            return getattr(self._modules["part"], name)

    @property
    def autocast_dtype(self):
        """The part's own autocast (a flags run's --mixed_precision); absent when the part has none."""
        return self.part.autocast_dtype

    @autocast_dtype.setter
    def autocast_dtype(self, value) -> None:
        self.part.autocast_dtype = value

    def adapted(self) -> nn.Module:
        """The frozen transformer the adapter is attached to."""
        adapted = getattr(self.part, "adapted", None)
        return adapted() if adapted is not None else self.part.model.transformer

    def optimiser_step(self, micro_step: int) -> int:
        """The optimiser step of a forward's id (the trainer's micro-step id; the part's when it accumulates)."""
        own = getattr(self.part, "optimiser_step", None)
        return own(micro_step) if own is not None else micro_step

    def train(self, mode: bool = True):
        """The part decides which of its modules follow train/eval (a pipeline's encoders stay in eval)."""
        self.training = mode
        self.part.train(mode)
        return self

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return self.part.trainable_parameters()

    def parameter_groups(self) -> list[dict]:
        """[{name, params (names), lr_mult}]: RSR gates and experts apart; LoRA one group."""
        names = list(self.trainable_parameters())
        if self.adapter.method != "rsr":
            return [{"name": "lora", "params": names, "lr_mult": 1.0}]
        ft = self.cfg.finetune
        gates = [n for n in names if ".rsr.gates." in n]
        return [{"name": "gates", "params": gates, "lr_mult": ft.gate_lr_mult},
                {"name": "experts", "params": [n for n in names if n not in gates], "lr_mult": ft.expert_lr_mult}]

    def forward(self, step: int, indices: range):
        annealed = {}
        if self.adapter.method == "rsr":
            rsr = get_rsr(self.adapted())
            if rsr.config.temperature_end is not None:
                progress = self.optimiser_step(step) / max(1, self.cfg.steps - 1)
                rsr.set_temperature(rsr.config.temperature_at(progress))
                annealed = {"temperature": rsr.temperature}
        loss, metrics = self.part(step, indices)  # the frozen base's loss with the adapter on it
        aux, stats = self.adapter.step_outputs(self.adapted())
        return loss + aux, dict(metrics, **stats, **annealed)

    def validate(self, step: int) -> dict:
        own = getattr(self.part, "validate", None)
        out = own(step) if own is not None else {}
        held_out = getattr(self.part, "_validation_set", None)
        if self.adapter.method == "rsr" and held_out is not None:
            from .instruments import probe_rsr

            out.update(probe_rsr(self.part.model, held_out).summary())
        return out

    def export(self, path: Path) -> None:
        """The adapter folder (a part may write its own, e.g. with a model card of its data)."""
        own = getattr(self.part, "save_adapter", None)
        if own is not None:
            own(self.adapter, path)
        else:
            self.adapter.save(self.adapted(), path)


def _frozen_base(cfg: TrainConfig, bundle):
    model = bundle.load(resolve_model(cfg.finetune.base))
    if model.meta.get("rsr"):
        raise ThinkpixError(f"{cfg.finetune.base} was trained with RSR in it (model.rsr); fine-tuning it is not supported")
    model.requires_grad_(False)
    cfg.model.canvas = model.meta["canvas"]  # the data follows the base model's canvas
    return model


class FrozenFlow(PooledLatents, FlowObjective):
    """A frozen bundled text-to-image base on the shapes world: `FinetuneObjective`'s part for it."""

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg, _frozen_base(cfg, TextToImage))


class FrozenClassFlow(PooledLatents, ClassFlowObjective):
    """A frozen bundled class-conditional DiT on the class world: `FinetuneObjective`'s part for it."""

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg, _frozen_base(cfg, ClassToImage))


class FurtherTrainingObjective(FrozenFlow):
    """The base trained further (`finetune.method=full`): every transformer weight trains, the text
    encoder and autoencoder stay frozen; the compute-matched baseline of an adapter fine-tune."""

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        self.model.transformer.requires_grad_(True)
        self.model.train()


class FeatureObjective(nn.Module):
    """The Fréchet distance's feature network on clean class renders (see `thinkpix.models.features`)."""

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        self.net = build_feature_net(cfg.model.size, cfg.model.canvas)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def forward(self, step: int, indices: range):
        labels, images, _, _ = class_batch(self.cfg.seed, step, indices, self.cfg.model.canvas, 0.0)
        return feature_loss(self.net, images, labels)

    def export(self, path: Path) -> None:
        save_feature_net(self.net, path, self.cfg.model.size, self.cfg.model.canvas,
                         training={"config": to_dict(self.cfg), "weights": "EMA"})


def build_objective(cfg: TrainConfig) -> nn.Module:
    seed_everything(cfg.seed)  # initial weights (model, RSR experts, LoRA) follow the config's seed
    if cfg.finetune.method != "none":
        dit = model_kind(resolve_model(cfg.finetune.base)) == "dit"
        if cfg.finetune.method == "full":
            if dit:
                raise ThinkpixError("finetune.method=full is implemented for text-to-image bases only")
            return FurtherTrainingObjective(cfg)
        return FinetuneObjective(cfg, FrozenClassFlow(cfg) if dit else FrozenFlow(cfg))
    if cfg.model.kind == "autoencoder":
        return AutoencoderObjective(cfg)
    if cfg.model.kind == "features":
        return FeatureObjective(cfg)
    if cfg.model.kind == "dit":
        return ClassFlowObjective(cfg)
    return FlowObjective(cfg)
