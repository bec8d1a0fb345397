"""Run the zoo's exported graphs without torch: numpy, onnxruntime and tokenizers only.

    zoo export char_lstm_shakespeare --onnx /tmp/lm
    zoo export --ckpt translator.ckpt --onnx /tmp/mt
    python examples/onnx_generate.py --lm /tmp/lm --prime "ROMEO:" --length 200
    python examples/onnx_generate.py --translator /tmp/mt "Ein Mann fährt Fahrrad."

Each folder holds the graphs (``*.onnx``), ``graphs.json`` (their inputs, outputs and special ids) and
the vocabulary or tokenizers. Prints one JSON line per result; ``--json`` adds the ids. Ends by
checking that torch was never imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import onnxruntime as ort


def session(folder: Path, graph: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # batch 1, small matrices: threads cost more than they give
    return ort.InferenceSession(str(folder / f"{graph}.onnx"), options, providers=["CPUExecutionProvider"])


def zero_state(spec: Dict, names: List[str], batch: int = 1) -> Dict[str, np.ndarray]:
    """Zeros for the state inputs ``h`` (and ``c``): ``graphs.json`` gives their shape, batch axis named."""
    return {
        n: np.zeros([batch if isinstance(d, str) else d for d in spec["inputs"][n]["shape"]], np.float32)
        for n in names
        if n in spec["inputs"]
    }


def generate(folder: Path, prime: str, length: int, temperature: float, seed: int) -> Dict:
    """The char LM: read the prime one character at a time, then sample (temperature 0 = greedy)."""
    spec = json.loads((folder / "graphs.json").read_text(encoding="utf-8"))["graphs"]["lm_step"]
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    index = {c: i for i, c in enumerate(vocab)}
    lm, rng = session(folder, "lm_step"), np.random.default_rng(seed)
    state = zero_state(spec, ["h", "c"])
    out: List[int] = []

    def step(char_id: int) -> np.ndarray:
        log_probs, *new = lm.run(None, {"ids": np.array([char_id], np.int64), **state})
        state.update(zip(state, new))  # h_next -> h, c_next -> c
        return log_probs[0]

    for c in prime:
        log_probs = step(index.get(c, 0))
    for _ in range(length):
        log_probs[0] = -np.inf  # never the unknown symbol
        if temperature == 0:
            char_id = int(log_probs.argmax())
        else:
            p = np.exp((log_probs - log_probs.max()) / temperature)
            char_id = int(rng.choice(len(p), p=p / p.sum()))
        out.append(char_id)
        log_probs = step(char_id)
    return {"prime": prime, "text": prime + "".join(vocab[i] for i in out), "ids": out}


def translate(folder: Path, sentence: str) -> Dict:
    """The translator, greedy: encode once, then one decoder step per token until ``<eos>``."""
    from tokenizers import Tokenizer

    info = json.loads((folder / "graphs.json").read_text(encoding="utf-8"))
    special = info["special_ids"]
    source = Tokenizer.from_file(str(folder / "source_tokenizer.json"))
    target = Tokenizer.from_file(str(folder / "target_tokenizer.json"))
    ids = source.encode(sentence, add_special_tokens=False).ids or [special["pad"]]
    encoder, decoder = session(folder, "encoder"), session(folder, "decoder_step")
    names = info["graphs"]["encoder"]["outputs"]
    encoded = dict(
        zip(names, encoder.run(None, {"src": np.array([ids], np.int64), "src_lengths": np.array([len(ids)], np.int64)}))
    )
    wanted = {i.name for i in decoder.get_inputs()}
    inputs = {k: v for k, v in encoded.items() if k in wanted}
    max_len = int(info["max_len_a"] * len(ids) + info["max_len_b"])
    prev, out = special["bos"], []
    while len(out) < max_len:
        log_probs, *rest = decoder.run(None, {"prev": np.array([prev], np.int64), **inputs})
        inputs.update(zip([n for n in ("h", "c") if n in inputs], rest))  # the state outputs come first
        prev = int(log_probs[0].argmax())
        out.append(prev)
        if prev == special["eos"]:
            break
    words = [i for i in out if i not in (special["eos"], special["pad"], special["bos"])]
    return {"source": sentence, "translation": target.decode(words).strip(), "ids": out}


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sentences", nargs="*", help="sentences to translate (with --translator)")
    parser.add_argument("--lm", type=Path, help="a folder written by `zoo export CHAR_LM --onnx DIR`")
    parser.add_argument("--prime", default="\n")
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--translator", type=Path, help="a folder written by `zoo export TRANSLATOR --onnx DIR`")
    parser.add_argument("--json", action="store_true", help="print the ids too")
    args = parser.parse_args(argv)
    results = []
    if args.lm:
        results.append(generate(args.lm, args.prime, args.length, args.temperature, args.seed))
    if args.translator:
        results += [translate(args.translator, s) for s in args.sentences]
    for result in results:
        print(json.dumps(result if args.json else {k: v for k, v in result.items() if k != "ids"}, ensure_ascii=False))
    assert "torch" not in sys.modules, "torch was imported"
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
