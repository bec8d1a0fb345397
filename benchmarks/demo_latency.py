"""Latency of ``zoo demo``'s classifier tab under 20 concurrent requests (issue 26).

    taskset -c 0 python benchmarks/demo_latency.py [--model imdb_bigru] [--clients 20] [--rounds 5]

Starts ``zoo demo MODEL`` as a user does (a subprocess on a free loopback port: zoo.demo.client),
sends one request to warm it, then ``--rounds`` bursts of ``--clients`` requests at once (a thread
each, different reviews), and ``--rounds`` requests one at a time. A request's latency is from send
to the whole JSON answer (label, word effects, the effects figure as a PNG). The model answers one
request at a time (the tab's lock), so under a burst the latency is mostly waiting: p95 ~ the burst's
length. Prints p50/p95 of each and every status seen (all must be 200) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Sequence

from zoo.demo.client import post, running


def reviews(n: int) -> List[str]:
    """``n`` different reviews, half positive, of the length of a short IMDB review (~60 words)."""
    good = "a wonderful, moving film with brilliant acting, a clever script and a score I keep humming; "
    bad = "a dull, boring mess with wooden acting, a silly script and a score I wanted to turn off; "
    return [f"Review {i}: " + (good if i % 2 else bad) * 3 + f"I saw it {i + 1} times." for i in range(n)]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between order statistics (numpy's default)."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="imdb_bigru")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    texts = reviews(args.clients)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")
        ),
        "unknown",
    )
    load = open("/proc/loadavg").read().split()[:3]
    print(f"CPU: {cpu}; load average at the start: {' '.join(load)}")
    with running([args.model]) as url:
        status, answer, first = post(url, args.model, "classify", {"text": texts[0]})
        assert status == 200, answer
        print(f"first request (warm-up): {first * 1000:.0f} ms; {answer['read_tokens']} tokens read")
        latencies: Dict[str, List[float]] = {"one at a time": [], f"{args.clients} at once": []}
        statuses: List[int] = []
        bursts: List[float] = []
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            for k in range(args.rounds):
                status, _, seconds = post(url, args.model, "classify", {"text": texts[k % len(texts)]})
                statuses.append(status)
                latencies["one at a time"].append(seconds)
                start = time.perf_counter()
                answers = list(pool.map(lambda text: post(url, args.model, "classify", {"text": text}), texts))
                bursts.append(time.perf_counter() - start)
                statuses += [status for status, _, _ in answers]
                latencies[f"{args.clients} at once"] += [seconds for _, _, seconds in answers]
    print(f"load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])}")
    print(f"statuses: {dict((s, statuses.count(s)) for s in sorted(set(statuses)))} of {len(statuses)} requests")
    print("| requests | n | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|---:|")
    for name, values in latencies.items():
        print(
            f"| {name} | {len(values)} | {percentile(values, 50) * 1000:.0f} | {percentile(values, 95) * 1000:.0f} | {max(values) * 1000:.0f} |"
        )
    print(
        f"a burst of {args.clients}, send to last answer: median {statistics.median(bursts) * 1000:.0f} ms "
        f"({', '.join(f'{b * 1000:.0f}' for b in bursts)})"
    )


if __name__ == "__main__":
    main()
