"""IMDB data pipeline: time to read + tokenize + cache the reviews (cold, then from the cache), and the
padding share of bucketed vs random batches. Not part of the test suite.

    flock /tmp/zoo-cpu.lock python benchmarks/imdb_pipeline.py --root ../shared/data/imdb/aclImdb_dev.tar.gz

Prints one JSON object (the numbers quoted in docs/results.md, "Many-to-one: IMDB and AG News").
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from datamodules.imdb import IMDBDataModule
from datamodules.loaders import BucketBatchSampler, padding_fraction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="aclImdb tarball or folder")
    parser.add_argument("--tokenizer", default="word", choices=["word", "bpe"])
    parser.add_argument("--vocab_size", type=int, default=25_000)
    parser.add_argument("--max_tokens", type=int, default=400)
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as cache:
        kw = dict(
            root=args.root,
            cache_dir=cache,
            tokenizer=args.tokenizer,
            vocab_size=args.vocab_size,
            max_tokens=args.max_tokens,
            batch_size=args.batch_size,
        )
        start = time.perf_counter()
        dm = IMDBDataModule(**kw)
        dm.setup()
        cold = time.perf_counter() - start
        start = time.perf_counter()
        warm_dm = IMDBDataModule(**kw)
        warm_dm.setup()
        warm = time.perf_counter() - start
    train = dm.datasets["train"]
    bucketed = BucketBatchSampler(None, args.batch_size, lengths=train.lengths, seed=0)
    random = [p.tolist() for p in torch.randperm(len(train)).split(args.batch_size)]
    evaluation = BucketBatchSampler(None, 2 * args.batch_size, lengths=dm.datasets["test"].lengths, shuffle=False)
    full = train.full_lengths.float()
    print(
        json.dumps(
            {
                "reviews": {k: len(v) for k, v in dm.datasets.items()},
                "tokenize_and_cache_s": round(cold, 2),
                "load_from_cache_s": round(warm, 3),
                "tokens_per_review_mean": round(float(full.mean()), 1),
                "tokens_per_review_median": float(full.median()),
                "share_truncated": round(float((full > args.max_tokens).float().mean()), 3),
                "padding_bucketed_train": round(padding_fraction(list(bucketed), train.lengths), 4),
                "padding_random_train": round(padding_fraction(random, train.lengths), 4),
                "padding_sorted_test": round(padding_fraction(list(evaluation), dm.datasets["test"].lengths), 4),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
