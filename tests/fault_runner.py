"""Runs `thinkpix ARGS` in a child process that pauses at a chosen point, so that a test can
kill -9 it exactly there:

    python tests/fault_runner.py POINT N ARGS...

POINT: `step` (inside training step N, before its update), `checkpoint` (the N-th checkpoint half
written: its model file on disk, its optimizer file, state and checksums not yet), `image` (after
the N-th PNG). The child prints PAUSED and sleeps; nothing of thinkpix is changed but the pause."""

import sys
import time

from thinkpix.cli import main
from thinkpix.training import checkpoint
from thinkpix.training.loop import Trainer

point, n, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
calls = 0


def pause():
    print("PAUSED", flush=True)
    time.sleep(600)


def after_nth(original, nth):
    def wrapped(*args, **kwargs):
        global calls
        out = original(*args, **kwargs)
        calls += 1
        if calls == nth:
            pause()
        return out
    return wrapped


if point == "step":
    train_step = Trainer.train_step

    def paused_step(self):
        if self.step + 1 == n:
            pause()
        return train_step(self)

    Trainer.train_step = paused_step
elif point == "checkpoint":
    checkpoint.save_file = after_nth(checkpoint.save_file, 3 * n - 2)  # three tensor files per checkpoint (model first)
elif point == "image":
    import thinkpix.imaging

    thinkpix.imaging.save_png = after_nth(thinkpix.imaging.save_png, n)
sys.exit(main(argv))
