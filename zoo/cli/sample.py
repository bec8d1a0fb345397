"""``zoo sample NAME_OR_FOLDER [PRIME ...]``: text from a character language model."""

from __future__ import annotations

from typing import List

from zoo.cli import common


def main(argv: List[str]) -> int:
    parser = common.inference_parser(
        "sample", "Generate text with a character language model: the prime, then what the model writes after it.",
        inputs="PRIME", inputs_help="texts to start from, one sample each ('-' = one per line of stdin; none = --prime)",
        output_help="write the sample(s) to this file instead of stdout",
    )
    parser.add_argument("--prime", default="\n", help="the text to start from when no PRIME is given (default: a newline)")
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
        # for input; '-' reads the primes from stdin.
        primes = common.read_inputs(args) if args.inputs else [args.prime]
        from zoo.tasks.language_model import CharLanguageModel

        model = common.load_model(args, CharLanguageModel)
        results = model.predict(primes, length=args.length, temperature=args.temperature, top_k=args.top_k, seed=args.seed)
        if args.json:
            common.emit([common.json_line(r) for r in results], args.output)
        else:
            common.emit([r["text"] for r in results], args.output)
        return 0

    return common.guarded("zoo sample", run)
