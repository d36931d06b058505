"""Where one training step's time goes, per model size and precision (torch.profiler, CPU): the op
categories, the profiling and the table behind `benchmarks/profile_step.py`.

    python -m benchmarks.profile_step --size demo,w256 --precision fp32,bf16 \
        --out benchmarks/results/profile_step.json

The step is the trainer's: the flow objective on one batch (the shapes world rendered, the text
embeddings cached after the first step, the frozen autoencoder's encoder in fp32), forward under the
precision's autocast, backward, and the trainer's AdamW for that precision (`thinkpix.training.loop.adamw`).
The profiled self CPU time of every op is put into one category:

- `adaLN`: everything inside diffusers' adaptive layer norms (`AdaLayerNormZero`,
  `AdaLayerNormContinuous`: the conditioning SiLU + linear, their layer norm and the first
  modulation), forward and backward (backward ops are matched to their forward op by autograd's
  sequence number);
- otherwise by the op: `matmul` (mm, addmm, bmm, baddbmm), `attention` (the scaled-dot-product
  kernels, forward and backward), `softmax`, `layer_norm`, `autoencoder` (convolutions and group
  norms: the frozen encoder), `optimizer` (everything inside `Optimizer.step`), `casts` (copies and
  dtype conversions: autocast's bf16 casts), `elementwise` (every other op: add, mul, GELU, sums, ...);
- `outside ops`: the step's unprofiled CPU time minus the profiled op time: Python (the model's
  and the trainer's), rendering the batch, the dispatcher.

Settings run alternated, round by round, in one process and are timed in CPU seconds of the process
(`time.process_time`: a machine shared with other work counts little; read the ratios).
"""

from __future__ import annotations

import time

import torch

CATEGORIES = ("matmul", "attention", "softmax", "layer_norm", "adaLN", "elementwise", "casts", "autoencoder",
              "optimizer", "outside ops")
ADALN_MODULES = ("AdaLayerNormZero", "AdaLayerNormContinuous")
ADALN_RANGE = "thinkpix::adaLN"
OPTIMIZER_PREFIX = "Optimizer.step"
BY_NAME = (  # (category, op-name fragments): the first match wins
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")),
    ("attention", ("scaled_dot_product",)),
    ("softmax", ("softmax",)),
    ("layer_norm", ("layer_norm",)),
    ("autoencoder", ("convolution", "group_norm")),
    ("casts", ("aten::copy_", "aten::_to_copy", "aten::to", "aten::clone", "aten::contiguous")),
)


def op_category(name: str) -> str:
    for category, fragments in BY_NAME:
        if any(name == f if f.startswith("aten::") else f in name for f in fragments):
            return category
    return "elementwise"


def annotate_adaln(transformer: torch.nn.Module) -> list:
    """Wrap the forward of every adaptive layer norm in a profiler range; -> the hook handles."""
    handles = []
    for module in transformer.modules():
        if type(module).__name__ in ADALN_MODULES:
            def pre(mod, _args):
                mod._thinkpix_range = torch.profiler.record_function(ADALN_RANGE)
                mod._thinkpix_range.__enter__()

            def post(mod, _args, _out):
                mod._thinkpix_range.__exit__(None, None, None)

            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return handles


def categorise(events) -> dict[str, float]:
    """Profiled self CPU seconds per category (every category but `outside ops`) of `events`
    (prof.events(): FunctionEvents linked by cpu_parent)."""

    def ancestors(e):
        while e is not None:
            yield e
            e = e.cpu_parent

    adaln_seq = set()  # autograd sequence numbers of ops run inside an adaLN's forward
    for e in events:
        if e.sequence_nr >= 0 and any(a.name == ADALN_RANGE for a in ancestors(e.cpu_parent)):
            adaln_seq.add(e.sequence_nr)
    out = {c: 0.0 for c in CATEGORIES if c != "outside ops"}
    for e in events:
        if not e.name.startswith("aten::") or e.self_cpu_time_total <= 0:
            continue  # ranges, autograd nodes: their self time is Python / engine time (outside ops)
        chain = list(ancestors(e))
        if any(a.name.startswith(OPTIMIZER_PREFIX) for a in chain):
            category = "optimizer"
        elif any(a.name == ADALN_RANGE or ("Backward" in a.name and a.sequence_nr in adaln_seq) for a in chain):
            category = "adaLN"
        else:
            category = op_category(e.name)
        out[category] += e.self_cpu_time_total / 1e6
    return out


def profiled(step, rounds: int) -> tuple[dict[str, float], float]:
    """-> (mean profiled self CPU seconds per category over `rounds` calls of step(), the share of the
    profiled wall time this process ran). The profiler clocks ops in wall time; on a shared machine
    that includes time the process waited for a core, so every op's time is scaled by the profiled
    steps' process CPU time over their wall time (waiting spread evenly over the ops)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            step()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    running = min(1.0, cpu / wall)
    return {k: v * running / rounds for k, v in categorise(prof.events()).items()}, running


def table(result: dict) -> str:
    """The Markdown table of docs/training.md (Precision): ms per step and share, per category."""
    cols = [(s, p) for s, e in result["sizes"].items() for p in e["precisions"]]
    head = "| part of the step | " + " | ".join(f"{s} ({result['sizes'][s]['width']}) {p}" for s, p in cols) + " |"
    rows = [head, "|" + "---|" * (1 + len(cols))]
    for k in CATEGORIES:
        cells = []
        for s, p in cols:
            e = result["sizes"][s]["precisions"][p]
            cells.append(f"{e['seconds'][k] * 1000:.0f} ms ({e['shares'][k]:.0%})")
        rows.append(f"| {k} | " + " | ".join(cells) + " |")
    rows.append("| **step (CPU time)** | " + " | ".join(
        f"**{result['sizes'][s]['precisions'][p]['step_cpu_s'] * 1000:.0f} ms**" for s, p in cols) + " |")
    return "\n".join(rows)
