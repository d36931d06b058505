"""Numbers quoted in the docs agree with the results files they cite (and with the code, for the few
facts the code computes: parameter counts, the matched LoRA rank, bundled folder sizes).

Convention (docs/testing.md): one `Quote` per quoted table row or sentence. `text` is the doc's text
with every number replaced by `{}`; `values` names, in order, where each number comes from: a key path
into `json` ("arms.base.overall_ci95.0": dict keys and list indices joined by dots), optionally
`(path, factor)` to rescale (e.g. FLOPs to GFLOP), "other.json:path" for a value from another results
file, or "=name" for a fact computed by `COMPUTED`.
`section` narrows the search to the part of the doc from a given text (e.g. the command that wrote
the JSON) to the next heading, when one row label occurs in several tables. The test finds every
occurrence of the text in the doc (at least one) and checks each number against its source to the
precision the doc prints (half a unit of its last digit, so 0.6525 may read 0.652
or 0.653). To add a check: copy the doc's line, put `{}` where its numbers are, list their sources.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS, RESULTS = ROOT / "docs", ROOT / "benchmarks" / "results"
NUMBER = r"([+-]?[0-9][0-9,]*(?:\.[0-9]+)?)"
TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


@dataclass(frozen=True)
class Quote:
    doc: str
    text: str
    json: str
    values: tuple
    section: str = ""  # if set, only the part of the doc from this text to the next heading is searched


# ----- facts the code computes (not results files) ------------------------------------------------
def _adapter_counts(bundle: str, layers: str) -> tuple[int, int, int]:
    """(RSR parameters, matched LoRA rank, LoRA parameters) for the docs' adapters on a bundled base,
    computed by the same code `thinkpix finetune` runs."""
    from diffusers import DiTTransformer2DModel, SD3Transformer2DModel

    from thinkpix.integrations.methods import attach_adapter
    from thinkpix.models.bundle import read_meta
    from thinkpix.training.config import FinetuneConfig

    folder = ROOT / "src" / "thinkpix" / "bundled" / bundle / "transformer"
    cls = DiTTransformer2DModel if read_meta(folder.parent).get("kind") == "c2i" else SD3Transformer2DModel
    spec = f"layers={layers},experts=2,latent_steps=2,rank=8"
    counts = []
    for method in ("rsr", "lora"):
        transformer = cls.from_config(cls.load_config(folder))
        counts.append(attach_adapter(transformer, FinetuneConfig(method=method, rsr=spec)))
    rank = transformer._thinkpix_lora["rank"]
    return counts[0].num_parameters, rank, counts[1].num_parameters


def _megabytes(folder: str, sub: str = "") -> float:
    path = ROOT / "src" / "thinkpix" / "bundled" / folder / sub
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


COMPUTED = {
    "rsr_params_t2i": lambda: _adapter_counts("shapes-base", "2,3")[0],
    "lora_rank_t2i": lambda: _adapter_counts("shapes-base", "2,3")[1],
    "lora_params_t2i": lambda: _adapter_counts("shapes-base", "2,3")[2],
    "rsr_params_dit": lambda: _adapter_counts("shapes-dit", "4,5")[0],
    "lora_rank_dit": lambda: _adapter_counts("shapes-dit", "4,5")[1],
    "lora_params_dit": lambda: _adapter_counts("shapes-dit", "4,5")[2],
    "mb_base": lambda: _megabytes("shapes-base"),
    "mb_base_transformer": lambda: _megabytes("shapes-base", "transformer"),
    "mb_base_autoencoder": lambda: _megabytes("shapes-base", "autoencoder"),
    "mb_dit": lambda: _megabytes("shapes-dit"),
    "mb_dit_transformer": lambda: _megabytes("shapes-dit", "transformer"),
    "mb_dit_autoencoder": lambda: _megabytes("shapes-dit", "autoencoder"),
}


# ----- the quotes -----------------------------------------------------------------------------------
def geneval_row(doc, json_name, label, arm, diff=True, section=""):
    """A GenEval table row, searched in the section whose command writes `json_name` (or `section`'s)."""
    text = f"| {label} | " + " | ".join(["{}"] * 6) + " | **{}** ({}-{}) | " + ("{} ({} to {}) |" if diff else "|")
    values = [f"arms.{arm}.tasks.{t}" for t in TASKS] + [f"arms.{arm}.overall", f"arms.{arm}.overall_ci95.0",
                                                         f"arms.{arm}.overall_ci95.1"]
    if diff:
        values += [f"arms.{arm}.minus_base.difference", f"arms.{arm}.minus_base.ci95.0", f"arms.{arm}.minus_base.ci95.1"]
    return Quote(doc, text, json_name, tuple(values), section=f"--out benchmarks/results/{section or json_name}")


def class_row(doc, label, arm, *lead):
    """A class-table row; `lead`: the sources of the numbers in `label` and the parameter column."""
    a = f"arms.{arm}."
    if arm == "base":
        return Quote(doc, f"| {label} | 0 | **{{}}** ({{}}-{{}}) | | **{{}}** ({{}}-{{}}) | |", "class_table_old_evaluator.json",
                     (a + "accuracy", a + "accuracy_ci95.0", a + "accuracy_ci95.1", a + "fd", a + "fd_ci95.0",
                      a + "fd_ci95.1"))
    return Quote(doc, f"| {label} | {{}} | {{}} ({{}}-{{}}) | {{}} ({{}} to {{}}) | {{}} ({{}}-{{}}) | {{}} ({{}} to {{}}) |",
                 "class_table_old_evaluator.json",
                 (*lead, a + "accuracy", a + "accuracy_ci95.0", a + "accuracy_ci95.1", a + "accuracy_minus_base.0",
                  a + "accuracy_minus_base.1", a + "accuracy_minus_base.2", a + "fd", a + "fd_ci95.0", a + "fd_ci95.1",
                  a + "fd_minus_base.0", a + "fd_minus_base.1", a + "fd_minus_base.2"))


def overhead_row(T, i):
    text = f"| {T} | " + " | ".join(["{}, {} | {}"] * 3) + " |"
    values = []
    for bb in ("sd3", "dit", "flux"):
        o = f"backbones.{bb}.overhead.{i}."
        values += [o + "time_ratio", o + "time_ratio_min", o + "flop_ratio"]
    return Quote("rsr.md", text, "rsr_overhead.json", tuple(values))


QUOTES = [
    # docs/lab/finetune_bundled_base.md: the text-to-image adapters in three settings
    Quote("lab/finetune_bundled_base.md", "all paper defaults (`--rsr layers=2,3,experts=2,latent_steps=2,rank=8`):\n  {} trainable parameters",
          "", ("=rsr_params_t2i",)),
    Quote("lab/finetune_bundled_base.md", "matched to the RSR parameter count (rank {}: {} parameters)", "",
          ("=lora_rank_t2i", "=lora_params_t2i")),
    # the fixed evaluator on re-trained adapters, the old one on the first adapters and on the new images
    *[row for json_name, rsr, lora, fixed in (
        ("finetune_compare.json", "rsr_T2", "lora", "finetune_compare_fixed.json"),
        ("finetune_compare_mix.json", "rsr_mix_T2", "lora_mix", "finetune_compare_mix_fixed.json"))
      for row in (
        geneval_row("lab/finetune_bundled_base.md", json_name, "base, old evaluator", "base", diff=False),
        geneval_row("lab/finetune_bundled_base.md", json_name, "RSR, T = 2, old evaluator (first adapter)", rsr),
        geneval_row("lab/finetune_bundled_base.md", json_name, "LoRA (matched), old evaluator (first adapter)", lora),
        geneval_row("lab/finetune_bundled_base.md", fixed, "base, **fixed evaluator**", "base", diff=False, section=json_name),
        geneval_row("lab/finetune_bundled_base.md", fixed, "RSR, T = 2, **fixed evaluator** (re-trained adapter)", rsr, section=json_name),
        geneval_row("lab/finetune_bundled_base.md", fixed, "LoRA (matched), **fixed evaluator** (re-trained adapter)", lora,
                    section=json_name))],
    geneval_row("lab/finetune_bundled_base.md", "finetune_compare_tau1.json", "base (seeds 2i+k), old evaluator", "base", diff=False),
    geneval_row("lab/finetune_bundled_base.md", "finetune_compare_tau1.json", "RSR, tau 1, T = 2, old evaluator (first adapter)", "rsr_tau1_T2"),
    geneval_row("lab/finetune_bundled_base.md", "finetune_compare_tau1_fixed.json", "base (seeds 2i+k), **fixed evaluator**", "base",
                diff=False, section="finetune_compare_tau1.json"),
    geneval_row("lab/finetune_bundled_base.md", "finetune_compare_tau1_fixed.json", "RSR, tau 1, T = 2, **fixed evaluator** (re-trained adapter)",
                "rsr_tau1_T2", section="finetune_compare_tau1.json"),
    Quote("lab/finetune_bundled_base.md", "`benchmarks/results/rescore_rounds/ARM.json`): base {}, RSR {}, LoRA {}, so", "",
          tuple(f"rescore_rounds/{a}.json:before.overall" for a in ("base", "rsr_T2", "lora"))),
    Quote("lab/finetune_bundled_base.md", "images: RSR {}, LoRA {} (`benchmarks/results/rescore_rounds/`)", "",
          tuple(f"rescore_rounds/{a}.json:before.overall" for a in ("rsr_mix_T2", "lora_mix"))),
    Quote("lab/finetune_bundled_base.md", "Old evaluator on the same images: base {}, RSR {} (`benchmarks/results/rescore_rounds/n2_*.json`)",
          "", tuple(f"rescore_rounds/n2_{a}.json:before.overall" for a in ("base", "rsr_tau1_T2"))),
    # docs/lab/class_track.md: the class-conditional table
    class_row("lab/class_track.md", "base (old evaluator, all 5,040)", "base"),
    class_row("lab/class_track.md", "LoRA SFT, rank {} (old evaluator)", "lora", "=lora_rank_dit", "=lora_params_dit"),
    class_row("lab/class_track.md", "RSR, M=2, T=2, rank 8 (old evaluator)", "rsr", "=rsr_params_dit"),
    class_row("lab/class_track.md", "RSR, soft routing (ablation) (old evaluator)", "rsr_soft", "=rsr_params_dit"),
    class_row("lab/class_track.md", "LoRA SFT, circle-weighted data (old evaluator)", "lora_circle", "=lora_params_dit"),
    class_row("lab/class_track.md", "RSR, circle-weighted data (old evaluator)", "rsr_circle", "=rsr_params_dit"),
    Quote("lab/class_track.md", "the Fréchet distance's floor (two held-out sets of 5,040) is {}.", "class_table_old_evaluator.json",
          ("heldout_vs_heldout_fd",)),
    # docs/class_track.md: the same table, with longer labels
    class_row("class_track.md", "base `shapes-dit` (all rows from here: old evaluator, not re-measured with the fixed one)",
              "base"),
    class_row("class_track.md", "LoRA SFT (rank {}, attn1 q/k/v of blocks 4, 5) (old evaluator)", "lora", "=lora_rank_dit",
              "=lora_params_dit"),
    class_row("class_track.md", "RSR (blocks 4, 5; M=2, T=2, rank 8, paper defaults) (old evaluator)", "rsr", "=rsr_params_dit"),
    class_row("class_track.md", "RSR, soft routing (ablation: dense softmax(g/tau) mixture, `routing=soft`)", "rsr_soft",
              "=rsr_params_dit"),
    class_row("class_track.md", "LoRA SFT on circle-weighted data (`data_mix=circle=4`)", "lora_circle",
              "=lora_params_dit"),
    class_row("class_track.md", "RSR on circle-weighted data (`data_mix=circle=4`)", "rsr_circle", "=rsr_params_dit"),
    Quote("class_track.md", "| two held-out render sets (the FD floor) | | 1.000 | | {} | |", "class_table_old_evaluator.json",
          ("heldout_vs_heldout_fd",)),
    # docs/model_card.md: the two bundled bases
    Quote("model_card.md", "`src/thinkpix/bundled/shapes-base/` ({} MB: transformer {} MB + its autoencoder {} MB, fp16)",
          "", ("=mb_base", "=mb_base_transformer", "=mb_base_autoencoder")),
    Quote("model_card.md", "`src/thinkpix/bundled/shapes-dit/` ({} MB: transformer {} MB + its copy of the autoencoder "
          "{} MB, fp16)", "", ("=mb_dit", "=mb_dit_transformer", "=mb_dit_autoencoder")),
    *[Quote("model_card.md", f"| {t} | " + ("**{}**" if t in ("single_object", "colors") else "{}") + " | {} | {} |",
            "base_geneval.json", (f"arms.base.tasks.{t}", f"finetune_compare.json:arms.base.tasks.{t}",
                                  f"rescore_base_geneval.json:after.task_prompts_correct.{t}"))
      for t in TASKS],
    Quote("model_card.md", "| **overall** (unweighted mean of the six) | **{}** (95% CI {}-{}) | {} ({}-{}) | {} |",
          "base_geneval.json", ("arms.base.overall", "arms.base.overall_ci95.0", "arms.base.overall_ci95.1",
                                "finetune_compare.json:arms.base.overall", "finetune_compare.json:arms.base.overall_ci95.0",
                                "finetune_compare.json:arms.base.overall_ci95.1", "arms.base.prompts_correct")),
    Quote("model_card.md", "command score {} with the old evaluator", "rescore_base_geneval.json", ("before.overall",)),
    Quote("model_card.md", "| **{} images/s** ({} s per step of 64) |", "training.json",
          ("train_images_per_s", "train_step_s")),
    Quote("model_card.md", "| transformer fwd + bwd FLOPs per image (torch `FlopCounterMode`) | {} GFLOP |", "training.json",
          (("transformer_fwd_bwd_flops_per_image", 1e-9),)),
    Quote("model_card.md", "measured fp32 matmul rate ({} GFLOP/s, 1024^2) | **{}** |", "training.json",
          (("matmul_peak_flop_rate", 1e-9), "mfu_vs_measured_matmul")),
    Quote("model_card.md", "(40 transformer calls per image) + decode | **{} images/s** |", "training.json",
          ("sampling_images_per_s_20_euler_cfg",)),
    Quote("model_card.md", "the old evaluator gave {} on those and {}\n(95% CI {}-{}) on all 5,040", "class_table_old_evaluator.json",
          ("rescore_class_base_480.json:before.accuracy", "arms.base.accuracy", "arms.base.accuracy_ci95.0",
           "arms.base.accuracy_ci95.1")),
    Quote("model_card.md", "feature network\n{} (CI {}-{}) against held-out renders, where two held-out sets are {}",
          "class_table_old_evaluator.json", ("arms.base.fd", "arms.base.fd_ci95.0", "arms.base.fd_ci95.1", "heldout_vs_heldout_fd")),
    # docs/rsr.md: RSR's time and FLOP overhead
    *[overhead_row(T, i) for i, T in enumerate((1, 2, 3, 5))],
    Quote("rsr.md", "Base forwards: SD3 {} ms median ({} GFLOP), DiT {} ms ({} GFLOP), FLUX {} ms ({} GFLOP).",
          "rsr_overhead.json", tuple(v for bb in ("sd3", "dit", "flux")
                                     for v in (f"backbones.{bb}.base_median_ms", f"backbones.{bb}.base_gflops"))),
    # docs/evaluation.md: the evaluator's speed
    Quote("evaluation.md", "| ground-truth renders of the committed set | {} images/s | {} images/s | {} |", "evaluator.json",
          ("speed_side_by_side.ground_truth.before.images_per_s", "speed_side_by_side.ground_truth.now.images_per_s",
           "speed_side_by_side.ground_truth.ratio")),
    Quote("evaluation.md", "| the same scenes drawn degraded (seed 2) | {} images/s | {} images/s | {} |", "evaluator.json",
          ("speed_side_by_side.degraded.before.images_per_s", "speed_side_by_side.degraded.now.images_per_s",
           "speed_side_by_side.degraded.ratio")),
    Quote("evaluation.md", "on the ground-truth set: {} images/s ({} s for\n{})", "evaluator.json",
          ("speed_folder.images_per_s", "speed_folder.seconds", "speed_folder.images")),
]


@functools.lru_cache(maxsize=None)
def _computed(name: str) -> float:
    return COMPUTED[name]()


def _lookup(json_name: str, source) -> float:
    path, factor = source if isinstance(source, tuple) else (source, 1.0)
    if path.startswith("="):
        return float(_computed(path[1:])) * factor
    if ":" in path:  # "other.json:key.path": a value from another results file
        json_name, path = path.split(":", 1)
    node = json.loads((RESULTS / json_name).read_text())
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return float(node) * factor


def _close(printed: str, value: float) -> bool:
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return abs(float(printed.replace(",", "")) - value) <= 0.5 * 10 ** -decimals + 1e-9


@pytest.mark.parametrize("quote", QUOTES, ids=lambda q: f"{q.doc}:{q.text[:40]}")
def test_docs_quote_the_numbers_of_their_results_files(quote):
    doc = (DOCS / quote.doc).read_text()
    if quote.section:
        assert quote.section in doc, f"docs/{quote.doc} no longer contains: {quote.section!r}"
        doc = doc[doc.index(quote.section):]
        doc = re.split(r"\n#+ ", doc)[0]  # up to the next heading
    pattern = "".join(NUMBER if part == "{}" else re.escape(part) for part in re.split(r"(\{\})", quote.text))
    matches = [m.groups() for m in re.finditer(pattern, doc)]
    assert matches, f"docs/{quote.doc} no longer contains: {quote.text!r}"
    for printed in matches:
        assert len(printed) == len(quote.values)
        for number, source in zip(printed, quote.values):
            want = _lookup(quote.json, source)
            assert _close(number, want), (f"docs/{quote.doc}: {number} in {quote.text!r} but {quote.json or 'the code'} "
                                          f"{source} = {want}")


def test_every_results_file_quoted_exists_and_the_convention_can_fail():
    cited = {q.json for q in QUOTES if q.json} | {v.split(":")[0] for q in QUOTES for v in q.values
                                                   if isinstance(v, str) and ":" in v}
    assert cited <= {p.relative_to(RESULTS).as_posix() for p in RESULTS.rglob("*.json")}
    assert _close("0.652", 0.6525) and _close("0.653", 0.6525) and not _close("0.650", 0.6525)
    assert _close("58,368", 58368) and not _close("29,184", 58368) and _close("+0.000", 0.0004)


def test_run_class_track_makes_every_arm_of_the_table_in_its_run_folder(tmp_path):
    """The script, run with stand-ins for torchrun/thinkpix/python that only log their arguments: it
    fine-tunes and samples every arm of the committed table and writes nothing outside RUNS_DIR."""
    import os
    import subprocess

    log, stubs = tmp_path / "calls.log", tmp_path / "bin"
    stubs.mkdir()
    for name in ("torchrun", "thinkpix", "python"):
        (stubs / name).write_text(f'#!/bin/bash\necho "{name} $*" >> {log}\n')
        (stubs / name).chmod(0o755)
    runs = tmp_path / "runs"
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}")
    script = ROOT / "benchmarks" / "run_class_track.sh"
    subprocess.run(["bash", str(script), str(runs)], cwd=ROOT, env=env, check=True, timeout=60)
    calls = log.read_text().splitlines()
    table = [c for c in calls if "benchmarks.class_table" in c and "--sample-only" not in c]
    assert len(table) == 1
    arms = json.loads((RESULTS / "class_table_old_evaluator.json").read_text())["arms"]
    made = dict(re.findall(r"--arm (\w+)=(\S+)", table[0]))
    assert set(arms) <= set(made) | {"base"} and "--arm base" in table[0]
    for arm, adapter in made.items():  # each adapter is fine-tuned into the run folder, then sampled
        assert any(c.startswith("thinkpix finetune") and f"--output_dir {Path(adapter).parent}" in c for c in calls), arm
        assert any("--sample-only" in c and f"--arm {arm}={adapter}" in c for c in calls), arm
        assert adapter.startswith(str(runs))
    assert f"--out {runs}/class_table.json" in table[0]
    assert not any("src/thinkpix" in c for c in calls)
    code = [line for line in script.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not any("src/thinkpix" in line for line in code)  # the bundled base is never written


def _analysis(name: str):
    import importlib

    return importlib.import_module(f"thinkpix.analysis.{name}")


@pytest.mark.parametrize("script, render, json_name, page", [
    ("compare_adapters", "markdown", "shift_compare_s1.json", "shift_table.md"),
    ("compare_adapters", "markdown", "shift_compare_seeds.json", "shift_table.md"),
    ("compare_adapters", "markdown", "lora_tuned_compare.json", "lora_tuning.md"),
    ("compare_adapters", "markdown", "trained_in_s0.json", "recursion_trained_in.md"),
    ("compare_adapters", "markdown", "trained_in_s1.json", "recursion_trained_in.md"),
    ("compare_adapters", "markdown", "trained_in_s2.json", "recursion_trained_in.md"),
    ("class_table", "markdown", "class_table.json", "class_track.md"),
    ("inspect_adapter", "runs_table", "shift_instruments.json", "shift_table.md"),
])
def test_generated_tables_appear_verbatim(script, render, json_name, page):
    """Tables the lab pages paste from a script's `--table` are that script's rendering of the cited JSON."""
    table = getattr(_analysis(script), render)(json.loads((RESULTS / json_name).read_text()))
    doc = (DOCS / "lab" / page).read_text(encoding="utf-8")
    assert table in doc, f"docs/lab/{page}: the table of {json_name} differs"


def test_lake_tables_appear_verbatim():
    """docs/lab/lake_arms.md's tables are lake_arms' renderings of the committed per-seed reports."""
    from thinkpix.analysis import lake_arms as arms
    doc = (DOCS / "lab" / "lake_arms.md").read_text(encoding="utf-8")
    reports = [json.loads((RESULTS / f"lake_arms_pc1_s{seed}.json").read_text()) for seed in range(3)]
    assert arms.seeds_markdown(reports) in doc, "docs/lab/lake_arms.md: the per-seed table differs"
    assert arms.markdown(reports[0]) in doc, "docs/lab/lake_arms.md: the seed-0 table differs"
    assert arms.markdown(json.loads((RESULTS / "lake_arms_pc1_2500.json").read_text())) in doc
