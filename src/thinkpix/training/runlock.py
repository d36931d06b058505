"""One run per folder: `OUT/run.lock` holds an exclusive `flock` and the holder's pid and host.

The kernel drops a `flock` when its holder dies (even by kill -9), so a lock left behind by a
crashed run is never an obstacle; it is recognised as stale (its pid no longer runs) and taken
over with a note. A second run on the same folder while the first is alive is refused, naming
the holder. (Local file systems; `flock` over NFS depends on the server.)
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from ..errors import ThinkpixError

LOCK_FILE = "run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    def __init__(self, folder: str | Path):
        self.path = Path(folder) / LOCK_FILE
        self.fd: int | None = None

    def _holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return ""

    def acquire(self) -> str | None:
        """Take the lock; -> a note when a stale lock was taken over. ThinkpixError when held."""
        if self.fd is not None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ThinkpixError(f"{self.path.parent}: another run is using this folder ({self._holder() or 'unknown holder'}"
                                f"; lock {self.path}); wait for it to finish or choose another out_dir") from None
        previous = self._holder()
        note = None
        if previous:
            fields = dict(part.split("=", 1) for part in previous.split() if "=" in part)
            pid = int(fields["pid"]) if fields.get("pid", "").isdigit() else None
            here = fields.get("host") == socket.gethostname()
            if pid is not None and not (here and pid == os.getpid()):
                state = "no longer running" if here and not _alive(pid) else "lock released"
                note = f"took over a stale lock of pid {pid} ({state})"
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()} host={socket.gethostname()} since={int(time.time())}\n".encode(), 0)
        self.fd = fd
        return note

    def release(self) -> None:
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)  # the file stays (unlinking it would race with a waiting run)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None
