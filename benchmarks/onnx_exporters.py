"""Which ONNX exporter for padded recurrent graphs: torch's TorchScript exporter on the native backend
(packed sequences -> ONNX GRU/LSTM ops with ``sequence_lens``) against the dynamo exporter on
zoo/export.py's program (the cell equations under ``scan`` -> an ONNX ``Scan``). For a classifier of
``recipes/imdb_gru.yaml``'s size (random weights): export time, whether torch.export/dynamo can keep
the length dynamic at all, the largest difference from eager, and onnxruntime's latency (median of
interleaved runs, one thread).

    python benchmarks/onnx_exporters.py [--length 200] [--batch 1 32]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from datamodules.tokenizers import train_tokenizer
from zoo.export import export_program
from zoo.export import graphs as export_graphs
from zoo.tasks.classifier import ClassifierForward, SequenceClassifier


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    words = [f"w{i}" for i in range(3000)]
    tokenizer = train_tokenizer(
        [" ".join(words[i : i + 50]) for i in range(0, 3000, 50)], vocab_size=4000, min_frequency=1
    ).to_str()
    torch.manual_seed(0)
    model = SequenceClassifier(
        tokenizer, ["neg", "pos"], cell="gru", embedding_dim=128, hidden_size=128, bidirectional=True, pool="last+max+mean"
    ).eval()
    with tempfile.TemporaryDirectory() as tmp:
        ts_path, dyn_path = Path(tmp) / "ts.onnx", Path(tmp) / "dynamo.onnx"
        graph = export_graphs(model, batch=2, length=6)[0]
        start = time.perf_counter()
        torch.onnx.export(
            ClassifierForward(model),
            (graph.inputs["ids"], graph.inputs["lengths"]),
            str(ts_path),
            dynamo=False,
            input_names=["ids", "lengths"],
            output_names=["probs"],
            dynamic_axes={"ids": {0: "batch", 1: "time"}, "lengths": {0: "batch"}},
        )
        ts_seconds = time.perf_counter() - start
        start = time.perf_counter()
        program = export_program(graph)
        torch.onnx.export(program, (), kwargs=graph.inputs, dynamo=True, output_names=["probs"]).save(str(dyn_path))
        dynamo_seconds = time.perf_counter() - start
        try:
            with torch.no_grad():
                torch.export.export(
                    ClassifierForward(model),
                    (),
                    graph.inputs,
                    dynamic_shapes={
                        "ids": {0: torch.export.Dim("batch"), 1: torch.export.Dim("time")},
                        "lengths": {0: torch.export.Dim("batch")},
                    },
                )
            native_export = "exports"
        except Exception as error:  # the point of the measurement: what torch.export says
            native_export = f"fails: {type(error).__name__}: {str(error).splitlines()[0][:100]}"
        print(f"export seconds: TorchScript {ts_seconds:.1f}, dynamo + scan {dynamo_seconds:.1f}")
        print(f"torch.export of the native (packed) model with a dynamic length: {native_export}")
        sessions = {"TorchScript (ONNX GRU op)": session(ts_path), "dynamo (ONNX Scan)": session(dyn_path)}
        for batch in args.batch:
            g = export_graphs(model, batch=batch, length=args.length)[0]
            feed = {k: v.numpy() for k, v in g.inputs.items()}
            with torch.no_grad():
                eager = g.module(**g.inputs).numpy()
            times = {name: [] for name in sessions}
            for _ in range(args.runs):
                for name, s in sessions.items():
                    start = time.perf_counter()
                    s.run(None, feed)
                    times[name].append((time.perf_counter() - start) * 1e3)
            for name, s in sessions.items():
                diff = float(np.abs(s.run(None, feed)[0] - eager).max())
                print(
                    f"batch {batch:3d} x {args.length} tokens  {name:26s} {statistics.median(times[name]):8.2f} ms   max |diff| {diff:.1e}"
                )


if __name__ == "__main__":
    main()
