"""The T-curve figure reads a compare_adapters report: arms PREFIX<T> form the curve, the rest are bands."""

import json

import pytest

from thinkpix.analysis.make_figures import t_curve


def _arm(overall, ms):
    return {"overall": overall, "overall_ci95": [overall - 0.02, overall + 0.02],
            "sampling": {"seconds_per_image": ms / 1000}}


def test_t_curve_draws_the_t_arms_and_refuses_a_report_without_them(tmp_path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"arms": {"base": _arm(0.5, 100), "rsr_T0": _arm(0.3, 90),
                                           "rsr_T4": _arm(0.55, 200), "rsr_T1": _arm(0.5, 120),
                                           "pooled": {"pool": ["base"], "overall": 0.5}}}))
    out = tmp_path / "curve.png"
    t_curve(str(report), str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="no arm named lora_T"):
        t_curve(str(report), str(out), prefix="lora_T")


def test_t_curve_draws_only_the_chosen_references_and_names_a_missing_one(tmp_path):
    arms = {f"ref{i}": _arm(0.1 * i, 50) for i in range(5)} | {"loop_T1": _arm(0.2, 60), "loop_T8": _arm(0.3, 90)}
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"arms": arms}))
    out = tmp_path / "curve.png"
    with pytest.raises(SystemExit, match="choose at most four with --reference"):  # five bands would lose one silently
        t_curve(str(report), str(out), prefix="loop_T")
    t_curve(str(report), str(out), prefix="loop_T", references=["ref0", "ref4"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match=r"no reference arm\(s\) \['deep'\]"):
        t_curve(str(report), str(out), prefix="loop_T", references=["deep"])
