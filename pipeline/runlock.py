"""One run per set at a time: an exclusive lock on ``runs/<set>/run.lock``.

Two runs of the same set write the same stage folders; a generator's checkpoint rotation deletes
files the other run may be loading, and both would resume the same half-written shards. The flow
takes this lock for the whole of a set's run. ``fcntl.flock`` is released by the kernel when the
holding process dies (kill -9 included), so a crashed run never leaves a stale lock behind; the
file itself stays and records the last holder (pid, host, time) for the message a waiting or
skipped run prints. flock also works across hosts on NFS v4 and most shared filesystems a Dask
cluster would use; on one that ignores it, the lock protects one host only.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = "run.lock"


class SetBusy(Exception):
    """Another process holds the set's lock (raised only when not waiting)."""

    def __init__(self, root: Path, holder: str):
        self.root, self.holder = root, holder
        super().__init__(f"{root} is in use by {holder}")


def holder_of(root: Path) -> str:
    """Who holds (or last held) the lock, for messages: 'pid 123 on host since 12:00:01'."""
    try:
        info = json.loads((Path(root) / LOCK_NAME).read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another run"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("time", 0)))
    what = f" ({info['what']})" if info.get("what") else ""
    return f"pid {info.get('pid')} on {info.get('host')} since {since}{what}"


@contextmanager
def set_lock(root: str | Path, wait: bool = True, on_wait: Callable[[str], None] | None = None,
             what: str = "", poll_s: float = 2.0) -> Iterator[None]:
    """Hold ``root/run.lock`` for the body. Busy: ``wait=False`` raises :class:`SetBusy` at once;
    ``wait=True`` calls ``on_wait(holder)`` once and polls until the holder ends (polling rather
    than a blocking flock keeps Ctrl-C and flow cancellation working)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise SetBusy(root, holder_of(root)) from None
                if not told and on_wait is not None:
                    on_wait(holder_of(root))
                told = True
                time.sleep(poll_s)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), "what": what})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
