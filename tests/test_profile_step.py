"""The training-step profile's bookkeeping (thinkpix.analysis.step_profile, behind
benchmarks/profile_step.py), the precision-parity comparison of two runs (thinkpix.analysis.precision_parity)
and the docs' precision tables (thinkpix.analysis.precision_tables)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from thinkpix.analysis import precision_parity, precision_tables, step_profile


@pytest.mark.parametrize("name,category", [
    ("aten::mm", "matmul"), ("aten::addmm", "matmul"), ("aten::bmm", "matmul"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu_backward", "attention"),
    ("aten::_softmax", "softmax"), ("aten::native_layer_norm_backward", "layer_norm"),
    ("aten::mkldnn_convolution", "autoencoder"), ("aten::native_group_norm", "autoencoder"),
    ("aten::copy_", "casts"), ("aten::_to_copy", "casts"), ("aten::gelu_backward", "elementwise"),
    ("aten::mul", "elementwise"), ("aten::mm_extra", "elementwise")])
def test_ops_fall_into_their_category(name, category):
    assert step_profile.op_category(name) == category


class Net(nn.Module):
    def __init__(self, adaln: bool):
        super().__init__()
        from diffusers.models.normalization import AdaLayerNormZero

        self.norm = AdaLayerNormZero(32) if adaln else None
        self.proj = nn.Linear(32, 32)

    def forward(self, x, emb):  # x (B, L, 32), emb (B, 32)
        if self.norm is not None:
            x = self.norm(x, emb=emb)[0]
        return self.proj(x)


def profile_of(net):
    from torch.profiler import ProfilerActivity, profile

    x, emb = torch.randn(4, 16, 32), torch.randn(4, 32)
    handles = step_profile.annotate_adaln(net)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        net(x, emb).square().mean().backward()
    for h in handles:
        h.remove()
    return prof.events()


def test_adaln_takes_its_forward_and_backward_ops_and_nothing_else():
    with_adaln = step_profile.categorise(profile_of(Net(adaln=True)))
    plain = step_profile.categorise(profile_of(Net(adaln=False)))
    assert with_adaln["adaLN"] > 0 and plain["adaLN"] == 0 and plain["matmul"] > 0
    counts = {}
    for adaln in (True, False):
        events = profile_of(Net(adaln))
        seq = {e.sequence_nr for e in events if e.sequence_nr >= 0 and e.cpu_parent is not None
               and e.cpu_parent.name == step_profile.ADALN_RANGE}
        counts[adaln] = sum(1 for e in events if "Backward" in e.name and e.sequence_nr in seq)
    assert counts[True] > 0 and counts[False] == 0  # backward nodes are matched to the adaLN's forward


def test_optimizer_ops_count_as_optimizer():
    from torch.profiler import ProfilerActivity, profile

    net = nn.Linear(32, 32)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(torch.randn(8, 32)).sum().backward()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        opt.step()
    seconds = step_profile.categorise(prof.events())
    assert seconds["optimizer"] > 0 and seconds["matmul"] == 0 and seconds["elementwise"] == 0


def test_profile_table_has_a_row_per_category_and_the_step():
    entry = {"step_cpu_s": 0.5, "seconds": {c: 0.05 for c in step_profile.CATEGORIES},
             "shares": {c: 0.1 for c in step_profile.CATEGORIES}}
    table = step_profile.table({"sizes": {"demo": {"width": 128, "precisions": {"fp32": entry, "bf16": entry}}}})
    lines = table.splitlines()
    assert lines[0] == "| part of the step | demo (128) fp32 | demo (128) bf16 |"
    assert len(lines) == 2 + len(step_profile.CATEGORIES) + 1 and "| 50 ms (10%) | 50 ms (10%) |" in lines[2]


def write_run(folder, losses, batch=64, images_per_s=32.0):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"batch_size": batch}))
    lines = [json.dumps({"step": 0, "val_loss": 2.0})]
    lines += [json.dumps({"step": 10 * (i + 1), "loss": v, "images_per_s": images_per_s}) for i, v in enumerate(losses)]
    lines.insert(3, "{cut sh")  # an unreadable line is skipped
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_parity_reads_the_curves_and_the_run_time(tmp_path):
    write_run(tmp_path / "a", [1.0, 0.8, 0.7, 0.6], batch=64, images_per_s=32.0)
    m = precision_parity.read_metrics(tmp_path / "a")
    assert m["loss"] == {10: 1.0, 20: 0.8, 30: 0.7, 40: 0.6} and m["val_loss"] == {0: 2.0}
    assert m["steps"] == 40 and m["seconds"] == pytest.approx(40 * 64 / 32.0)


def test_paired_interval_brackets_the_mean_and_excludes_zero_for_a_clear_shift():
    rng = np.random.default_rng(0)
    shifted = 0.5 + rng.normal(0, 0.1, 200)
    lo, hi = precision_parity.paired_interval(shifted)
    assert lo < shifted.mean() < hi and lo > 0
    lo, hi = precision_parity.paired_interval(rng.normal(0, 0.1, 200))
    assert lo < 0 < hi


def test_docs_profile_table_is_the_committed_profile_verbatim():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = json.loads((root / "benchmarks" / "results" / "profile_step.json").read_text())
    doc = (root / "docs" / "training.md").read_text()
    assert step_profile.table(result) in doc and result["command"] in doc
    for entry in result["sizes"].values():
        for e in entry["precisions"].values():  # the parts and the residual add up to the step
            assert sum(e["seconds"].values()) == pytest.approx(e["step_cpu_s"])
            assert e["step_cpu_s"] == min(e["step_cpu_s_all"])


def test_docs_fastpath_table_is_the_committed_benchmark_verbatim():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = json.loads((root / "benchmarks" / "results" / "fastpath_demo.json").read_text())
    doc = (root / "docs" / "training.md").read_text()
    assert precision_tables.fastpath_table(result) in doc and result["command"] in doc
    ref = result["variants"]["fp32 loop"]["step_cpu_s"]
    for v in result["variants"].values():  # the fastest round, and speed-ups of the same process's rounds
        assert v["step_cpu_s"] == min(v["rounds_cpu_s"])
        assert v["speedup_vs_fp32_loop_cpu"] == pytest.approx(ref / v["step_cpu_s"])


def test_docs_w384_precision_table_is_the_committed_benchmark_verbatim():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = json.loads((root / "benchmarks" / "results" / "precision_w384.json").read_text())
    doc = (root / "docs" / "training.md").read_text()
    assert precision_tables.precision_table(result) in doc and result["command"] in doc
