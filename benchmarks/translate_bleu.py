"""BLEU of a translation checkpoint on a Multi30k test set, greedy and beam, and the speed of batched
beam search against translating one sentence at a time (same outputs?).

    python benchmarks/translate_bleu.py --ckpt checkpoints/multi30k_attn/last.ckpt \
        --data ../shared/data/multi30k --beams 1 5 --compare_unbatched 5
    python benchmarks/translate_bleu.py --model multi30k_de_en_attn_gru --data ../shared/data/multi30k \
        --beams --compare_unbatched 5 --limit 200 --threads 1

sacreBLEU on detokenized, cased text with its default ``13a`` tokenizer (the model's
``bleu_tokenize``); references are the raw test sentences.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import sacrebleu
import torch

from zoo.tasks.base import load_pretrained, load_task
from zoo.tasks.seq2seq import Seq2Seq


def read_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_from = parser.add_mutually_exclusive_group(required=True)
    model_from.add_argument("--ckpt", help="a training checkpoint")
    model_from.add_argument("--model", help="a pretrained model: registered name or folder (zoo.tasks.base.load_pretrained)")
    parser.add_argument("--data", required=True, help="folder with {test_set}.{lang}.gz")
    parser.add_argument("--test_set", default="test_2016_flickr")
    parser.add_argument("--source", default="de")
    parser.add_argument("--target", default="en")
    parser.add_argument("--beams", type=int, nargs="*", default=[1, 5], help="beam widths to score BLEU with (none: skip)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N sentences of the test set")
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument(
        "--compare_unbatched", type=int, default=0, help="beam width to time batched vs one sentence at a time (0 = skip)"
    )
    parser.add_argument("--length_penalty", type=float, default=None, help="override the model's GNMT alpha")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="write the translations and scores as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    sources = read_lines(data / f"{args.test_set}.{args.source}.gz")[: args.limit]
    references = read_lines(data / f"{args.test_set}.{args.target}.gz")[: args.limit]
    model = load_task(args.ckpt, Seq2Seq) if args.ckpt else load_pretrained(args.model, Seq2Seq)
    if args.length_penalty is not None:
        model.hparams.length_penalty = args.length_penalty
    tokenize = model.hparams.bleu_tokenize
    report = {
        "ckpt": args.ckpt,
        "model": args.model,
        "test_set": args.test_set,
        "sentences": len(sources),
        "attention": model.hparams.attention,
        "length_penalty": model.hparams.length_penalty,
        "runs": {},
    }
    for beam in args.beams:
        start = time.perf_counter()
        hyps = [r["translation"] for r in model.predict(sources, beam_size=beam, batch_size=args.batch_size)]
        seconds = time.perf_counter() - start
        metric = sacrebleu.BLEU(tokenize=tokenize)
        bleu = metric.corpus_score(hyps, [references])
        report["runs"][f"beam{beam}"] = {
            "bleu": round(bleu.score, 2),
            "signature": str(metric.get_signature()),
            "seconds": round(seconds, 1),
            "translations": hyps,
        }
        print(f"beam {beam}: BLEU {bleu.score:.2f}  ({bleu})  {seconds:.1f} s", flush=True)
    if args.compare_unbatched:
        k = args.compare_unbatched
        # One batch first, untimed: the first search in a process also pays for the allocator's
        # first large blocks, which would count against whichever path ran first.
        model.predict(sources[: args.batch_size], beam_size=k, batch_size=args.batch_size)
        # Wall and CPU seconds (this process, all its threads): on a shared machine the CPU time
        # is what the search itself cost, the wall time adds the waits for a core.
        start, cpu = time.perf_counter(), time.process_time()
        batched = [r["translation"] for r in model.predict(sources, beam_size=k, batch_size=args.batch_size)]
        t_batched, cpu_batched = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        alone = [model.predict([s], beam_size=k)[0]["translation"] for s in sources]
        t_alone, cpu_alone = time.perf_counter() - start, time.process_time() - cpu
        same = sum(a == b for a, b in zip(batched, alone))
        report["speed"] = {
            "beam": k,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "batched_s": round(t_batched, 2),
            "one_at_a_time_s": round(t_alone, 2),
            "speedup": round(t_alone / t_batched, 2),
            "batched_cpu_s": round(cpu_batched, 2),
            "one_at_a_time_cpu_s": round(cpu_alone, 2),
            "speedup_cpu": round(cpu_alone / cpu_batched, 2),
            "identical_outputs": same,
        }
        report["runs"][f"beam{k}_batched"] = {"translations": batched}
        print(
            f"beam {k}: batched ({args.batch_size} at a time) {t_batched:.1f} s, one at a time {t_alone:.1f} s: "
            f"{t_alone / t_batched:.2f}x faster (CPU {cpu_batched:.1f} s vs {cpu_alone:.1f} s: {cpu_alone / cpu_batched:.2f}x); "
            f"identical outputs {same}/{len(sources)}",
            flush=True,
        )
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
