"""zoo.malloc: glibc keeps freed memory where it can, and ZOO_MALLOC=system opts out."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from zoo.malloc import keep_freed_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")


def run(code: str, **env: str) -> str:
    import os

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True, env={**os.environ, **env}
    ).stdout.strip()


def test_large_blocks_come_from_the_heap_after_keep_freed_memory():
    """A 64 MB block is an mmap of its own under glibc's defaults and comes from the heap (sbrk) after
    the call: /proc/self/maps shows whether the block lies inside [heap]."""
    code = """
        import ctypes
        from zoo.malloc import keep_freed_memory
        applied = keep_freed_memory() if KEEP else False
        libc = ctypes.CDLL("libc.so.6"); libc.malloc.restype = ctypes.c_void_p
        address = libc.malloc(64 << 20)
        heap = [line.split()[0] for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]")]
        inside = any(int(lo, 16) <= address < int(hi, 16) for lo, hi in (h.split("-") for h in heap))
        print(applied, inside)
    """
    assert run(code.replace("KEEP", "True")) == "True True"
    assert run(code.replace("KEEP", "False")) == "False False"  # glibc's defaults: a mapping of its own
    assert run(code.replace("KEEP", "True"), ZOO_MALLOC="system") == "False False"


def test_a_zoo_command_keeps_freed_memory(monkeypatch):
    calls = []
    monkeypatch.setattr("zoo.cli.keep_freed_memory", lambda: calls.append(1) or True)
    from zoo.cli import main

    assert main(["models"]) == 0
    assert calls == [1]
    assert keep_freed_memory.__module__ == "zoo.malloc"
