"""The FLOP matcher that picks the deeper base compared with a looped one (docs/lab/shapes_rsr_depth.md)."""

import pytest

from thinkpix.analysis.depth_match import nearest_depth, pick_base, transformer_flops
from thinkpix.errors import ThinkpixError

RSR = "preset=refined-every-step,layers=0,experts=2,latent_steps=8,rank=4"


def test_looped_cost_grows_with_latent_steps_and_starts_at_the_plain_base():
    plain = transformer_flops("tiny-d1")
    looped = [transformer_flops("tiny-d1", RSR, t) for t in (0, 1, 4, 8)]
    assert looped[0] == plain  # T = 0 is the base model, bit for bit, at the base's cost
    assert looped[0] < looped[1] < looped[2] < looped[3]


def test_nearest_depth_is_the_plain_stack_closest_in_flops():
    target = transformer_flops("tiny-d1", RSR, 8)
    depth, flops = nearest_depth(target, "tiny", max_depth=6)
    assert sorted(flops) == list(range(1, 7)) and all(flops[n] < flops[n + 1] for n in range(1, 6))
    assert all(abs(flops[depth] - target) <= abs(f - target) for f in flops.values())
    assert depth > 1  # eight latent steps cost more than the one block they loop


def _ladder(**short):
    """A depth-ladder report whose arm d<N> falls short of d6 on the tasks given for it."""
    def diffs(tasks):
        return {t: {"difference": -0.1 if t in tasks else 0.0, "ci95": [-0.2, -0.05] if t in tasks else [-0.05, 0.05]}
                for t in ("counting", "position", "two_object")}
    return {"arms": {f"d{n}": {"per_task_minus_d6": diffs(short.get(f"d{n}", ()))} for n in (1, 2, 3, 4)}
            | {"d6": {"per_task_minus_d1": diffs(())}}}


def test_pick_base_is_the_shallowest_base_short_of_the_deepest_on_some_task():
    assert pick_base(_ladder(d2=("position",), d3=("counting", "position"))) == (2, ["position"])
    assert pick_base(_ladder(d1=("counting",), d4=("position",))) == (1, ["counting"])


def test_pick_base_refuses_a_ladder_where_depth_helps_nowhere():
    with pytest.raises(ThinkpixError, match="depth helps nowhere"):
        pick_base(_ladder())
