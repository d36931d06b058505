"""The page's inputs, checked with the CLI's own checkers (`thinkpix.validation`): a bad value becomes a
`ThinkpixError` whose one line the page shows instead of running anything."""

from __future__ import annotations

from ..validation import integer, number, seed, text

MAX_STEPS = 100  # sampler steps
MAX_THINK = 8  # latent steps T (the strip shows 0..MAX_THINK)
MAX_IMAGES = 4


def sampler(seed_value, steps, guidance) -> tuple[int, int, float]:
    """(seed, sampler steps, guidance) checked; numbers from a web form may arrive as floats."""
    return (seed(_int(seed_value), "seed"), integer(_int(steps), "sampler steps", 1, MAX_STEPS),
            number(guidance, "guidance", 0.0, 30.0))


def think(value) -> int:
    return integer(_int(value), "latent steps T", 0, MAX_THINK)


def images(value) -> int:
    return integer(_int(value), "images", 1, MAX_IMAGES)


def prompt(value) -> str:
    return text(value if value is not None else "", "prompt", allow_empty=False).strip()


def _int(value):
    """A form number: 3.0 -> 3 (2.5 stays and is refused by `integer`), None -> None (refused)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
