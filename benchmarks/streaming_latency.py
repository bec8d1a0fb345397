"""Per-step latency at batch 1 on CPU: the streams of zoo/streaming.py (eager PyTorch) against the
exported graphs of zoo/export.py run by onnxruntime, one thread each, measured interleaved (eager
step, then onnxruntime step, alternating) so that the machine's load hits both alike.

    python benchmarks/streaming_latency.py --multi30k ../shared/data/multi30k [--steps 300]

- char LM: the shipped ``char_lstm_shakespeare`` (``lm_step``), one character per step;
- frame classifier: ``recipes/video_frames_shapes.yaml``'s size (zoo_frame_cnn, GRU 64, 32 px frames),
  random weights (``frame_step``: backbone + recurrent step + head);
- translator: ``recipes/multi30k_attn.yaml``'s size (bi-GRU 256, general attention, tied embeddings,
  joint BPE vocabulary of 8000 trained on Multi30k's training text), random weights: latency does not
  depend on training. ``decoder_step`` per token, and ``encoder`` once per 13-token sentence.

Prints the median microseconds per step and the eager/onnxruntime ratio (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

from datamodules.tokenizers import BOS_ID, train_translation_tokenizer
from zoo.export import export
from zoo.tasks.base import load_pretrained
from zoo.tasks.frame_classifier import FrameClassifier
from zoo.tasks.seq2seq import Seq2Seq


def interleaved(steps: int, eager: Callable[[int], None], onnx: Callable[[int], None]) -> Dict[str, float]:
    """Median microseconds per call of each, alternating calls; 20 warm-up calls each first."""
    times: Dict[str, List[float]] = {"eager": [], "onnxruntime": []}
    for t in range(steps + 20):
        for name, run in (("eager", eager), ("onnxruntime", onnx)):
            start = time.perf_counter()
            run(t)
            if t >= 20:
                times[name].append((time.perf_counter() - start) * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def char_lm(steps: int, out: Path) -> Dict[str, float]:
    model = load_pretrained("char_lstm_shakespeare").eval()
    export(model, out / "lm", formats=("onnx",))
    stream, lm = model.stream(), session(out / "lm" / "lm_step.onnx")
    layers, hidden = model.rnn.num_layers, model.rnn.hidden_size
    state = {"h": np.zeros((layers, 1, hidden), np.float32), "c": np.zeros((layers, 1, hidden), np.float32)}
    ids = np.random.default_rng(0).integers(1, len(model.vocab), steps + 20)

    def eager(t: int) -> None:
        stream.step(torch.tensor([int(ids[t])]))

    def onnx(t: int) -> None:
        _, state["h"], state["c"] = lm.run(None, {"ids": ids[t : t + 1], **state})

    return interleaved(steps, eager, onnx)


def frame_classifier(steps: int, out: Path) -> Dict[str, float]:
    torch.manual_seed(0)
    model = FrameClassifier(
        label_names=[str(i) for i in range(4)], frame_size=32, encoder="zoo_frame_cnn", cell="gru", hidden_size=64
    ).eval()
    export(model, out / "frames", formats=("onnx",))
    stream, step = model.stream(), session(out / "frames" / "frame_step.onnx")
    frames = torch.randint(0, 256, (steps + 20, 1, 3, 32, 32), dtype=torch.uint8)
    state = {"h": np.zeros((1, 1, 64), np.float32)}

    def eager(t: int) -> None:
        stream.step(frames[t])

    def onnx(t: int) -> None:
        _, state["h"] = step.run(None, {"frames": frames[t].numpy(), **state})

    return interleaved(steps, eager, onnx)


def translator(steps: int, out: Path, multi30k: Path) -> Dict[str, Dict[str, float]]:
    lines: List[str] = []
    for lang in ("de", "en"):
        with gzip.open(multi30k / f"train.{lang}.gz", "rt", encoding="utf-8") as f:
            lines += f.read().splitlines()
    tokenizer = train_translation_tokenizer(lines, kind="bpe", vocab_size=8000).to_str()
    torch.manual_seed(0)
    model = Seq2Seq(
        tokenizer,
        tokenizer,
        cell="gru",
        embedding_dim=256,
        hidden_size=256,
        bidirectional=True,
        attention="general",
        tie_embeddings=True,
    ).eval()
    export(model, out / "mt", formats=("onnx",))
    encoder, decoder = session(out / "mt" / "encoder.onnx"), session(out / "mt" / "decoder_step.onnx")
    sentence = "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt."
    ids = np.array([model.tokenizer("source").encode(sentence, add_special_tokens=False).ids], np.int64)
    lengths = np.array([ids.shape[1]], np.int64)
    names = [o.name for o in encoder.get_outputs()]
    encoded = dict(zip(names, encoder.run(None, {"src": ids, "src_lengths": lengths})))
    inputs = {k: v for k, v in encoded.items() if k in {i.name for i in decoder.get_inputs()}}
    stream = model.stream(sentence)
    tokens = np.random.default_rng(0).integers(4, 8000, steps + 20)

    def eager(t: int) -> None:
        stream.step(int(tokens[t]) if t else BOS_ID)

    def onnx(t: int) -> None:
        _, inputs["h"], _ = decoder.run(None, {"prev": tokens[t : t + 1], **inputs})

    per_token = interleaved(steps, eager, onnx)
    per_sentence = interleaved(
        max(steps // 5, 20), lambda t: model.stream(sentence), lambda t: encoder.run(None, {"src": ids, "src_lengths": lengths})
    )
    return {"decoder step": per_token, f"encoder ({ids.shape[1]} tokens)": per_sentence}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--multi30k", type=Path, required=True, help="Multi30k's folder (train.de.gz, train.en.gz), for the BPE vocabulary"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    if not (args.multi30k / "train.de.gz").exists():
        parser.error(f"--multi30k {args.multi30k}: no train.de.gz there")
    print(f"{'':58s} {'eager us':>10s} {'onnxruntime us':>15s} {'ratio':>6s}", flush=True)

    def show(name: str, r: Dict[str, float]) -> None:
        print(f"{name:58s} {r['eager']:10.0f} {r['onnxruntime']:15.0f} {r['eager'] / r['onnxruntime']:6.2f}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        show("char LM step (char_lstm_shakespeare)", char_lm(args.steps, out))
        show("frame classifier step (video_frames_shapes size)", frame_classifier(args.steps, out))
        for name, r in translator(args.steps, out, args.multi30k).items():
            show(f"translator {name} (multi30k_attn size)", r)


if __name__ == "__main__":
    main()
