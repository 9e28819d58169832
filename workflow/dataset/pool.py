"""Process pools whose workers die with their parent.

A ProcessPoolExecutor's workers outlive a parent that is killed (SIGKILL, an out-of-memory
kill, a cluster job hitting its time limit): they wait on their task queue for ever, holding
memory and, under a workflow manager, the job's slot. Every per-image stage makes its pool here:
on Linux each worker asks the kernel for SIGKILL when its parent dies, and everywhere a
watcher thread in each worker exits once the parent is gone.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 1.0


def process_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),))


def die_with_parent(parent: int) -> None:
    """Worker initializer: end this process when `parent` is gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watcher below still ends the worker
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="die-with-parent").start()


def _watch(parent: int) -> None:
    while True:
        time.sleep(POLL_SECONDS)
        if os.getppid() != parent:  # re-parented: the pool's owner is gone
            os._exit(1)
