"""The command-line options every command shares, each declared once (`schema.Spec`): type, range, unit,
meaning, and the reason for a maximum that protects the machine. Commands add them with `schema.option`;
`thinkpix COMMAND --help` prints each one's type and range. The fine-tuning flags (diffusers' names) are
declared in `FINETUNE_FLAGS`; `PipelineOptions.check` and a flags YAML use the same declarations."""

from __future__ import annotations

from .rsr.config import BOUNDS
from .schema import Spec
from .validation import MAX_IMAGE_SIDE, MAX_PROMPT_CHARS, MAX_SEED

WHY_SIDE = ("larger images are refused before decoding: memory and compute grow with the side squared "
            "(4096 px is the largest side any supported base samples)")
WHY_LATENT = BOUNDS["latent_steps"][1]
WHY_RANK = BOUNDS["rank"][1]
WHY_IMAGES = "every image of a request is held in memory at once"

# ---- sampling -----------------------------------------------------------------------------------------
SEED = Spec(int, "random seed (image i uses SEED + i)", 0, MAX_SEED, why_max="seeds feed torch and NumPy generators")
SAMPLER_STEPS = Spec(int, "sampler steps", 1, 10_000, unit="steps",
                     why_max="each step is one forward pass of the transformer per image")
GUIDANCE = Spec(float, "classifier-free guidance scale (1 = off)", 0.0, 100.0)
SAMPLER = Spec(str, "flow sampler", choices=("euler", "heun"))
THREADS = Spec(int, "torch threads (0 = torch's default)", 0, 1024, unit="threads")
PRECISION = Spec(str, "compute precision: fp32 | bf16 autocast | auto (bf16 where the CPU/GPU has bf16 matrix units)",
                 choices=("fp32", "bf16", "auto"))
RUN_PRECISION = Spec(str, "compute precision (overrides the config's `precision`): fp32 | bf16 autocast (weights, "
                     "optimiser, EMA and losses stay fp32) | auto", choices=("fp32", "bf16", "auto"), nullable=True)
MODEL = Spec(str, "model folder or bundled name", path="input", nullable=True)
ADAPTER = Spec(str, "RSR or LoRA adapter folder (from `thinkpix finetune`)", path="input", nullable=True)
LATENT_STEPS = Spec(int, "RSR latent steps at inference (0 = the base model; default: the adapter's own)", 0,
                    BOUNDS["latent_steps"][0], unit="latent steps", why_max=WHY_LATENT, nullable=True)
PRETRAINED = Spec(str, "a diffusers pipeline folder (SD3/SD3.5, FLUX, DiT), a hub id in the local cache, or a bundled "
                  "model", path="input", nullable=True)
DEVICE = Spec(str, "device of a --pretrained base (auto: a GPU when there is one)", pattern=r"auto|cpu|cuda(:\d+)?",
              pattern_help="auto, cpu or cuda[:N]", pretrained_only=True)
DTYPE = Spec(str, "weights of a --pretrained base: auto (bf16 on GPU, else fp32)", choices=("auto", "fp32", "bf16", "fp16"),
             pretrained_only=True)
RESOLUTION = Spec(int, "image side of a --pretrained base (0: the base's default)", 0, MAX_IMAGE_SIDE, unit="pixels",
                  why_max=WHY_SIDE, pretrained_only=True)
FORCE_BASE = Spec(bool, "load an --adapter even if it was trained on another base (refused otherwise)")
PROMPT = Spec(str, f"the prompt (text-to-image models; at most {MAX_PROMPT_CHARS} characters)", empty=False,
              nullable=True)
CLASS = Spec(str, 'a class of a class-conditional model, e.g. "red circle" (instead of a prompt)', empty=False,
             nullable=True)
NUM_IMAGES = Spec(int, "images to generate", 1, 4096, unit="images", why_max=WHY_IMAGES)
UPSCALE = Spec(int, "nearest-neighbour upscale of the grid (default: a small image shown at about 128 px; 128 px and "
               "more at their own size)", 1, 64, unit="x", why_max="the grid is held in memory, upscaled",
               nullable=True)
IMAGES_PER_PROMPT = Spec(int, "images per prompt (or per class)", 1, 10_000, unit="images")
LIMIT = Spec(int, "only the first N prompts (0 = all)", 0, 10**7, unit="prompts")
BATCH_SIZE = Spec(int, "images sampled in one batch", 1, 65_536, unit="images", why_max="a batch is held in memory")
PER_TASK = Spec(int, "prompts per task", 1, 100_000, unit="prompts")
DISTRACTORS = Spec(int, "extra objects of shapes the prompt does not name", 0, 16, unit="objects")
CANVAS = Spec(int, "canvas side of the shapes world", choices=(32, 64), unit="pixels")
EVAL_CANVAS = Spec(int, "required image side (default: the first image's; all must match)", 1, MAX_IMAGE_SIDE,
                   unit="pixels", why_max=WHY_SIDE, nullable=True)

PROMPT_SET = Spec(str, "geneval: the six GenEval tasks; dense: multi-object prompts with DPG-style questions",
                  choices=("geneval", "dense"))

# ---- files and folders ----------------------------------------------------------------------------------
PROMPTS_FILE = Spec(str, "metadata JSONL (one GenEval metadata object per line)", path="in-file", nullable=True)
CONFIG_FILE = Spec(str, "YAML config file", path="in-file", nullable=True)
INPUT_DIR = Spec(str, "folder in GenEval's layout (DIR/00000/metadata.jsonl, DIR/00000/samples/0000.png, ...)",
                 path="input")
GRID_OUT = Spec(str, "PNG file for the grid (an existing file is refused unless --overwrite)", path="out-file",
                keep=True)
TRACE_OUT = Spec(str, "safetensors file for RSR routing decisions (expert per token, layer, latent step, diffusion step)",
                 path="out-file", keep=True, nullable=True)
JSONL_OUT = Spec(str, "JSONL file to write (an existing file is refused unless --overwrite)", path="out-file", keep=True)
OUT_DIR = Spec(str, "output folder", path="out-dir")
EXPORT_DIR = Spec(str, "folder for the exported model or adapter (default: inside the run folder)", path="out-dir",
                  nullable=True)
RESUME_FROM = Spec(str, "resume from this checkpoint folder instead of the run's latest", path="input", nullable=True)
OVERRIDE = Spec(str, "a dotted config override, key.sub=value")
SWITCH = Spec(bool, "on when given")  # a plain switch; its command gives the meaning
OVERWRITE = Spec(bool, "replace what is already there (only what thinkpix wrote)")

# ---- training runs ---------------------------------------------------------------------------------------
STOP_AFTER = Spec(int, "stop at this step of the configured schedule (the schedule still spans `steps`)", 1, 10**9,
                  unit="steps", nullable=True)
RANK = Spec(int, "LoRA rank (default: parameter-matched to --rsr)", 1, BOUNDS["rank"][0], why_max=WHY_RANK,
            nullable=True)
METHOD = Spec(str, "rsr (default), lora (the paper's SFT baseline), or full: the base's whole transformer trained further "
              "(a trainer-config run; exports a model folder)", choices=("rsr", "lora", "full"), nullable=True)
FT_OUTPUT_DIR = Spec(str, "run folder: checkpoints, metrics, validation, the adapter (default runs/finetune)",
                     path="out-dir", nullable=True)
RSR_SPEC = Spec(str, "RSR spec, e.g. layers=2,3,experts=2,latent_steps=2,rank=8 (bounds: latent_steps <= "
                f"{BOUNDS['latent_steps'][0]}, experts <= {BOUNDS['num_experts'][0]}, rank <= {BOUNDS['rank'][0]})",
                nullable=True)

# ---- the lake world (map sizes: thinkpix.worlds.lake.maps.MIN_SIZE..MAX_SIZE, 2..8 cells across the canvas) ----
LAKE_PER_CELL = Spec(int, "maps per (grid size, path length) pair", 1, 10_000, unit="maps")
LAKE_SIZES = Spec(str, "grid sizes, e.g. 4-8 (lengths 1..2N each)", empty=False)
LAKE_TARGET = Spec(str, "path: draw a shortest path; position: draw the agent after k moves (k per map)",
                   choices=("path", "position"))
LAKE_METHOD = Spec(str, "rsr, or lora (parameter-matched)", choices=("rsr", "lora"))
LAKE_MAP = Spec(str, "rows separated by commas ('S.H.,..H.,....,H..G') or an integer seed of a random map", empty=False)
LAKE_MAP_OPTIONAL = Spec(str, LAKE_MAP.help, empty=False, nullable=True)
LAKE_SIZE = Spec(int, "grid size of a random map", 2, 8, unit="cells", why_max="8 cells fill the 32x32 canvas")
LAKE_LENGTH = Spec(int, "shortest-path length of a random map", 1, 64, unit="moves")
LAKE_K = Spec(int, "position-target models: moves after which to draw the agent", 0, 64, unit="moves", nullable=True)

# ---- serve ------------------------------------------------------------------------------------------------
PORT = Spec(int, "port to listen on", 1, 65_535)
HOST = Spec(str, "address to listen on (127.0.0.1: this machine only)", empty=False)
QUEUE_SIZE = Spec(int, "requests that may wait in the queue", 1, 10_000, unit="requests")

# ---- fine-tuning flags (names of diffusers' train_dreambooth_lora_sd3.py where diffusers has the flag) ----------
WEIGHTING_SCHEMES = ("logit_normal", "sigma_sqrt", "mode", "cosmap", "none")  # diffusers' SD3 training schemes
FINETUNE_FLAGS = [  # (flag, Spec, default of a flags run); bools are switches
    ("--data", Spec(str, "imagefolder (images + metadata.jsonl/csv), a dataset saved with save_to_disk, a hub id in the "
                    "local cache, or 'shapes' (the shapes-world stream)", empty=False), "shapes"),
    ("--caption_column", Spec(str, "caption column (DiT bases: a class name or index)", empty=False), "text"),
    ("--image_column", Spec(str, "image column of a saved dataset", empty=False), "image"),
    ("--resolution", Spec(int, "training resolution (0: the base's default)", 0, MAX_IMAGE_SIDE, unit="pixels",
                          why_max=WHY_SIDE), 0),
    ("--center_crop", Spec(bool, "centre crop (default: random crop)"), False),
    ("--random_flip", Spec(bool, "random horizontal flip"), False),
    ("--caption_dropout", Spec(float, "share of captions replaced by '' (guidance)", 0.0, 1.0, hi_open=True), 0.1),
    ("--train_batch_size", Spec(int, "batch size per optimiser micro-step (all processes together)", 1, 65_536,
                                unit="images", why_max="a batch is held in memory"), 4),
    ("--max_train_steps", Spec(int, "optimiser steps (wins over --num_train_epochs)", 1, 10**9, unit="steps"), 500),
    ("--num_train_epochs", Spec(int, "passes over --data (0: use --max_train_steps)", 0, 10**6, unit="epochs"), 0),
    ("--gradient_accumulation_steps", Spec(int, "micro-batches per optimiser step", 1, 10**6), 1),
    ("--learning_rate", Spec(float, "adapter learning rate", 0.0, 10.0, lo_open=True), 1e-4),
    ("--gate_learning_rate", Spec(float, "RSR gates' learning rate (0: --learning_rate)", 0.0, 10.0), 0.0),
    ("--lr_scheduler", Spec(str, "diffusers scheduler: constant, constant_with_warmup, linear, cosine, ... (empty: the "
                                 "trainer config's warm-up and schedule)"), "constant"),
    ("--lr_warmup_steps", Spec(int, "warm-up steps of the scheduler", 0, 10**9, unit="steps"), 0),
    ("--max_grad_norm", Spec(float, "gradient clipping", 0.0, lo_open=True), 1.0),
    ("--adam_weight_decay", Spec(float, "AdamW weight decay", 0.0, 10.0), 0.0),
    ("--use_8bit_adam", Spec(bool, "bitsandbytes' AdamW8bit (needs thinkpix[bnb])"), False),
    ("--mixed_precision", Spec(str, "autocast of the base; adapters stay fp32", choices=("no", "bf16", "fp16")), "no"),
    ("--gradient_checkpointing", Spec(bool, "recompute the transformer's blocks in backward"), False),
    ("--weighting_scheme", Spec(str, "SD3 timestep density / loss weighting", choices=WEIGHTING_SCHEMES),
     "logit_normal"),
    ("--logit_mean", Spec(float, "logit_normal mean", -100.0, 100.0), 0.0),
    ("--logit_std", Spec(float, "logit_normal std", 0.0, 100.0, lo_open=True), 1.0),
    ("--mode_scale", Spec(float, "scale of the 'mode' scheme", -100.0, 100.0), 1.29),
    ("--checkpointing_steps", Spec(int, "save a checkpoint every N steps", 1, 10**9, unit="steps"), 500),
    ("--checkpoints_total_limit", Spec(int, "checkpoints kept", 1, 10_000), 2),
    ("--validation_prompt", Spec(str, "prompt rendered into OUTPUT_DIR/validation every --validation_steps"), ""),
    ("--num_validation_images", Spec(int, "images per validation", 1, 4096, unit="images", why_max=WHY_IMAGES), 4),
    ("--validation_steps", Spec(int, "validate every N steps (0: at the end only)", 0, 10**9, unit="steps"), 0),
    ("--validation_inference_steps", SAMPLER_STEPS, 20),
    ("--validation_guidance", Spec(float, "guidance scale of the validation images", 0.0, 100.0), 3.0),
    ("--cache_latents", Spec(bool, "encode every image once (one crop and flip per image)"), False),
    ("--cache_text_embeddings", Spec(bool, "encode every caption once"), False),
    ("--max_sequence_length", Spec(int, "T5 tokens (SD3, FLUX)", 1, 4096, unit="tokens"), 77),
    ("--report_to", Spec(str, "tracker (tensorboard needs thinkpix[tensorboard]); logs in OUTPUT_DIR/logs",
                         choices=("none", "tensorboard")), "none"),
    ("--seed", Spec(int, "data order, noise, timesteps", 0, MAX_SEED, why_max="seeds feed torch and NumPy generators"), 0),
    ("--device", Spec(str, "device of the base (auto: a GPU when there is one)", pattern=r"auto|cpu|cuda(:\d+)?",
                      pattern_help="auto, cpu or cuda[:N]"), "auto"),
    ("--dtype", Spec(str, "base weights: auto (bf16 on GPU, else fp32)", choices=("auto", "fp32", "bf16", "fp16")), "auto"),
    ("--log_every", Spec(int, "metrics line every N steps", 1, 10**9, unit="steps"), 10),
]
FLAG_SPECS = {flag.lstrip("-"): spec for flag, spec, _ in FINETUNE_FLAGS}
FLAG_SPELLINGS = {"--data": ("--dataset_name",)}  # diffusers' own names for a flag, equally current
# keys of a flags YAML beside the FINETUNE_FLAGS (flags of their own on the command line)
TOP_LEVEL_SPECS = {"pretrained": PRETRAINED, "rsr": RSR_SPEC, "method": METHOD, "rank": RANK,
                   "output_dir": FT_OUTPUT_DIR}


def check_flag_values(obj) -> None:
    """Every attribute of `obj` (a `TrainerOptions`/`PipelineOptions`) that is a fine-tuning flag, checked by its
    declaration and named as the flag."""
    for name, spec in FLAG_SPECS.items():
        if hasattr(obj, name):
            spec.check(getattr(obj, name), f"--{name}")
