"""The margins of the learning tests on this CPU: every test marked ``learning`` (it trains, then
asserts a quality threshold) run under each ATen CPU kernel and several seeds, with the metric each
run reached and the worst per test.

    OMP_NUM_THREADS=1 python benchmarks/learning_margins.py                     # kernels default, avx2, native; seeds 0-4
    OMP_NUM_THREADS=1 python benchmarks/learning_margins.py --seeds 0 1 --kernels default native --tests tests/test_seq2seq.py

Each (kernel, seed) is one ``pytest -m learning`` process with ``ATEN_CPU_CAPABILITY=<kernel>`` (unset
for ``native``: the best this CPU has, AVX-512 where present) and ``ZOO_TEST_SEED=<seed>``; the tests
report their metric through ``tests.conftest.learned`` into a JSON-lines file. A threshold belongs below
the worst value printed here, with a margin, and the spread beside it in the test
(docs/reliability.md, "Learning tests on any CPU"). Prints a Markdown table, then the CPU model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run(kernel: str, seed: int, log: Path, tests: List[str]) -> int:
    env = {
        **os.environ,
        "ZOO_TEST_SEED": str(seed),
        "ZOO_LEARNING_LOG": str(log),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("ATEN_CPU_CAPABILITY", None)
    if kernel != "native":
        env["ATEN_CPU_CAPABILITY"] = kernel
    # -m "learning": slow-marked learning tests too; a failed threshold still reports its metric.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "learning", *tests]
    return subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def table(rows: List[Dict], kernels: List[str], seeds: List[int]) -> str:
    values: Dict[str, Dict[str, List[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        values[row["test"]][row["label"]].append(row["value"])
    lines = [
        "| test | " + " | ".join(f"{k}: seeds {seeds[0]}-{seeds[-1]}" for k in kernels) + " | worst |",
        "|---" * (len(kernels) + 2) + "|",
    ]
    for test, by_kernel in sorted(values.items()):
        cells = [", ".join(f"{v:.4g}" for v in by_kernel.get(k, [])) or "-" for k in kernels]
        worst = min(v for vs in by_kernel.values() for v in vs)
        lines.append(f"| {test} | " + " | ".join(cells) + f" | {worst:.4g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kernels",
        nargs="+",
        default=["default", "avx2", "native"],
        help="ATEN_CPU_CAPABILITY values (default, avx2, avx512) or native (the variable unset)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--tests", nargs="+", default=["tests"], help="test files or node ids (default: every learning test in tests/)"
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:  # seed by seed: an interrupted run has measured every kernel
            for kernel in args.kernels:
                log = Path(tmp) / f"{kernel}-{seed}.jsonl"
                code = run(kernel, seed, log, args.tests)
                got = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
                print(
                    f"{kernel:8s} seed {seed}: "
                    + ", ".join(f"{r['value']:.4g}" for r in got)
                    + ("" if code == 0 else f"  (pytest exit {code}: a threshold failed)"),
                    flush=True,
                )
                rows += [{**r, "label": kernel} for r in got]
    print()
    print(table(rows, args.kernels, args.seeds))
    print(
        f"\nCPU: {cpu_model()}; native kernel: {sorted({r['kernel'] for r in rows if r['label'] == 'native'})}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )


if __name__ == "__main__":
    main()
