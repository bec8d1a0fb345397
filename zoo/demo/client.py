"""A running ``zoo demo`` from the outside: the command started as a user types it, and its API called
over HTTP. The browser test (tests/test_demo.py) and the latency benchmark (benchmarks/demo_latency.py)
both use it, so they measure and check the same server.

    with running(["imdb_bigru"]) as url:            # python -m zoo.cli demo imdb_bigru --port 0
        status, answer, seconds = post(url, "imdb_bigru", "classify", {"text": "a fine film"})
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

#: the line ``zoo demo`` prints once it listens
LISTENING = re.compile(r" at (http://127\.0\.0\.1:\d+/) ")


@contextlib.contextmanager
def running(
    args: Sequence[str] = (),
    *,
    cwd: Optional[Path] = None,
    timeout: float = 300.0,
    log: Optional[List[str]] = None,
    prefix: Sequence[str] = (),
) -> Iterator[str]:
    """``python -m zoo.cli demo ARGS --port 0`` in a subprocess (``prefix``: e.g. ``taskset -c 0``),
    its URL once it listens; it is stopped on leaving. Its output lines go to ``log``; a server that
    exits or does not listen within ``timeout`` seconds is a ``RuntimeError`` with its output."""
    lines: List[str] = [] if log is None else log
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "zoo.cli", "demo", *args, "--port", "0"],
        cwd=cwd or root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    found: Dict[str, str] = {}

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            match = LISTENING.search(line)
            if match:
                found["url"] = match.group(1)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while "url" not in found and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        if "url" not in found:
            raise RuntimeError("zoo demo did not start:\n" + "".join(lines)[-3000:])
        yield found["url"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def post(url: str, tab: str, action: str, fields: Dict[str, Any], timeout: float = 300.0) -> Tuple[int, Dict[str, Any], float]:
    """POST ``fields`` as JSON to ``URL/api/TAB/ACTION``: the status, the JSON answer, the seconds it took."""
    request = urllib.request.Request(
        f"{url}api/{tab}/{action}",
        data=json.dumps(fields).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), time.perf_counter() - start
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), time.perf_counter() - start
