"""``zoo sample NAME_OR_FOLDER [PRIME ...]``: text from a character language model."""

from __future__ import annotations

from typing import List

from zoo.cli import batch, common


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "sample",
        "Generate text with a character language model: the prime, then what the model writes after it.",
        inputs="PRIME",
        inputs_help="texts to start from, one sample each ('-' = one per line of stdin; none = --prime)",
    )
    parser.add_argument(
        "--prime",
        default="\n",
        help="the text to start from when no PRIME is given (default: a newline; '-' = one prime per line of stdin)",
    )
    parser.add_argument("--length", type=int, default=500, help="characters to generate (default 500)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy; higher = more random (default 0.8)")
    parser.add_argument("--top_k", type=int, default=None, help="sample only among the k most likely characters")
    parser.add_argument("--seed", type=int, default=None, help="random seed for a reproducible sample")
    args = common.parse(parser, argv)
    if args.length < 0:
        parser.error(f"--length must be >= 0, got {args.length}")
    if args.temperature < 0:
        parser.error(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        parser.error(f"--top_k must be >= 1, got {args.top_k}")

    def run() -> int:
        # Unlike the other commands, no PRIME means --prime, not stdin: `zoo sample NAME` must not wait
        # for input; '-' (as a PRIME or as --prime) reads the primes from stdin.
        primes = args.inputs or [args.prime]
        items = batch.read_items(args, primes)
        from zoo.tasks.language_model import CharLanguageModel

        model = common.load_model(args, CharLanguageModel)

        def predict(chunk: List[str]) -> List[dict]:
            return model.predict(chunk, length=args.length, temperature=args.temperature, top_k=args.top_k, seed=args.seed)

        return batch.run_records("zoo sample", args, items, predict, lambda r: r["text"], chunk=1)  # each sample once done

    return common.guarded("zoo sample", run)
