"""Keep freed memory in the process instead of handing it back to the system after every step.

glibc's ``malloc`` serves every block above its mmap threshold (128 KiB at start, raised up to 32 MiB
as blocks are freed) with a fresh ``mmap`` and returns it with ``munmap`` when freed. A training step
allocates its ``(batch, time, hidden)`` activations and gradients afresh each time; once they are larger
than that threshold, each one is new memory, and the first write to each of its 4 KiB pages is a page
fault (the kernel zeroes the page). For minGRU at T = 2048 (batch 16, hidden 512: 67 MB a tensor) that
cost about as much as the computation: `benchmarks/scan_throughput.py` measured a training step at
1.2-2.0 s with glibc's defaults (`--malloc system`) and 0.79 s with the settings below (`--malloc zoo`),
AMD EPYC, 2 threads (docs/benchmarks.md, "minGRU and minLSTM").

:func:`keep_freed_memory` sets glibc's ``M_MMAP_THRESHOLD`` (serve large blocks from the heap),
``M_TRIM_THRESHOLD`` (do not give the heap's top back while less than this is free) and
``M_TOP_PAD`` (grow the heap in large steps) with ``mallopt``. The cost: the process keeps up to
``threshold`` bytes of freed memory mapped; its resident size does not shrink between steps. ``zoo``
commands call it at start-up; ``ZOO_MALLOC=system`` leaves glibc's defaults. Elsewhere (macOS,
Windows, a libc without ``mallopt``) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's <malloc.h>


def keep_freed_memory(threshold: int = 1 << 30, top_pad: int = 1 << 28) -> bool:
    """Ask glibc to serve blocks up to ``threshold`` bytes from the heap and to keep up to
    ``threshold`` bytes of freed memory, growing the heap ``top_pad`` bytes at a time. True if glibc
    took all three settings; False where there is no glibc ``mallopt`` or ``ZOO_MALLOC=system``."""
    if os.environ.get("ZOO_MALLOC", "").lower() == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all([mallopt(M_MMAP_THRESHOLD, threshold), mallopt(M_TRIM_THRESHOLD, threshold), mallopt(M_TOP_PAD, top_pad)])
