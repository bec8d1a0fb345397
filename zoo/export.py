"""Each task's inference graphs, out of Python: ONNX files (onnxruntime) and torch.export programs (.pt2).

    char LM            lm_step            ids (B,), h [, c]                  -> log_probs (B, V), h [, c]
    classifier         classifier         ids (B, T), lengths (B,)           -> probs (B, C)
    translator         encoder            src (B, S), src_lengths (B,)       -> memory, mask, summary [, keys], h [, c]
                       decoder_step       prev (B,), memory, mask, summary [, keys], h [, c]
                                                                             -> log_probs (B, V), h [, c] [, attention]
    captioner          encoder            images (B, 3, H, W)                -> memory [, keys], h [, c]
                       decoder_step       tokens (B,), memory [, keys], h [, c]
                                                                             -> log_probs (B, V), h [, c] [, attention]
    frame classifier   frame_step         frames (B, 3, H, W) uint8 [, h, c] -> probs (B, C) [, h, c]

``B``, ``T`` and ``S`` are dynamic axes; ``h``/``c`` are the recurrent state in torch's layout
``(layers * directions, B, H)`` (the captioner's cell state is ``(B, H)``). Every graph is the task's
own inference code (``forward``, ``encode``, ``decode_step``, ``attend_step`` ...) traced once by
``torch.export``; the ``.onnx`` file is that program converted by torch's dynamo exporter, the ``.pt2``
file the program itself (``torch.export.load``).

Why a scan: torch.export cannot keep a sequence length dynamic through ``torch.nn.GRU/LSTM/RNN``
(their decomposition unrolls the time loop and fixes T), and the packing the native backend uses for
padding cannot be traced. While exporting, every :class:`~zoo.recurrent.Recurrent` of the model runs
:func:`scan_forward` instead: the same cell equations (``Recurrent.equations_step``, i.e.
:mod:`zoo.cells`) under ``torch.scan`` (an ONNX ``Scan``), padding handled by masking as the cells
backend does. So every cell family with an equations step exports, with dynamic lengths, and the
results equal the eager model's (tests/test_export.py). What cannot export: a bidirectional frame
classifier's step (its output needs future frames) and the baseline's running clip mean
(``recurrent: false, target: clip``): :class:`ExportError` says so.

The vocabularies and tokenizers are written beside the graphs as readable JSON
(:func:`zoo.hub.format.text_files`), and ``graphs.json`` lists every graph's inputs and outputs, the
special token ids and the state sizes, so that numpy + onnxruntime + ``tokenizers`` run the files
without torch (examples/onnx_generate.py). onnx, onnxscript and onnxruntime are the ``[export]``
extra, imported only when exporting ONNX.
"""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.download import write_atomic
from datamodules.tokenizers import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from zoo.cells import SequenceCell
from zoo.graphs import ExportError, Graph
from zoo.hub.format import text_files
from zoo.recurrent import Recurrent, RecurrentOutput, SequenceLayer, Weights, reverse_padded
from zoo.sequences import State, hidden_of, keep_finished, lengths_to_mask

FORMATS = ("onnx", "pt2")
MANIFEST = "graphs.json"


# ---- the recurrence as a scan ---------------------------------------------------------------------
def _scan_direction(
    rnn: Recurrent, x: Tensor, h0: State, w: Union[Weights, SequenceCell], mask: Optional[Tensor]
) -> Tuple[Tensor, State]:
    """One direction of one layer over ``x`` ``(B, T, input)``: outputs ``(B, T, H)`` (zero at padded
    steps) and the final state (each sequence's state after its last real step)."""
    from torch._higher_order_ops.scan import scan

    if isinstance(w, SequenceCell):  # a modern family: its own step over the raw inputs
        step, x_proj = w.step, x.transpose(0, 1)
    else:
        step = rnn.equations_step(w.hh, w.b_hh)
        x_proj = F.linear(x, w.ih, w.b_ih).transpose(0, 1)  # (T, B, gates * H), the hoisted projection
    keep = (mask if mask is not None else torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)).t().unsqueeze(-1)

    def combine(state, inputs):
        x_t, keep_t = inputs
        new, _ = step(x_t, state)
        new = keep_finished(keep_t[:, 0], new, state)
        return new, hidden_of(new) * keep_t  # a new tensor: scan's outputs may not alias its carry

    h0 = tuple(s.clone() for s in h0) if isinstance(h0, tuple) else h0  # (zeros, zeros) is one tensor twice: scan refuses aliases
    final, out = scan(combine, h0, (x_proj, keep))
    return out.transpose(0, 1), final


def scan_forward(
    rnn: Recurrent, x: Tensor, lengths: Optional[Tensor] = None, state: Optional[State] = None, **unused: Any
) -> RecurrentOutput:
    """:meth:`Recurrent.forward` (output and final state) traceable with dynamic batch and length."""
    mask = lengths_to_mask(lengths, x.shape[1], device=x.device) if lengths is not None else None
    D, finals = rnn.num_directions, []
    first = rnn.layers[0]
    if isinstance(first, SequenceLayer) and first.l0.not_exportable:
        raise ExportError(f"cell {rnn.cell!r} is not exportable: {first.l0.not_exportable}")
    for index, layer in enumerate(rnn.layers):
        layer_state = None
        if state is not None:
            rows = slice(index * D, (index + 1) * D)
            layer_state = tuple(s[rows] for s in state) if isinstance(state, tuple) else state[rows]
        outs, layer_finals = [], []
        u = rnn.layer_input(index, x)
        for direction in range(D):
            inputs = reverse_padded(u, lengths) if direction else u
            h0 = rnn.direction_state(layer_state, direction, x.shape[0], x, layer)
            w = layer.direction(direction) if isinstance(layer, SequenceLayer) else Weights.of(layer, direction)
            out, final = _scan_direction(rnn, inputs, h0, w, mask)
            outs.append(reverse_padded(out, lengths) if direction else out)
            layer_finals.append(final)
        x = rnn.layer_output(index, x, torch.cat(outs, -1))
        finals.append(
            tuple(map(torch.stack, zip(*layer_finals))) if isinstance(layer_finals[0], tuple) else torch.stack(layer_finals)
        )
    final_state = tuple(map(torch.cat, zip(*finals))) if isinstance(finals[0], tuple) else torch.cat(finals)
    x = rnn.stack_output(x)
    if rnn.residual and mask is not None:  # as Recurrent.forward: zero at padded steps
        x = x * mask.unsqueeze(-1).to(x.dtype)
    return RecurrentOutput(x, final_state)


@contextlib.contextmanager
def scanned(model: nn.Module) -> Iterator[nn.Module]:
    """Every :class:`Recurrent` of ``model`` runs :func:`scan_forward` inside the block."""
    rnns = [m for m in model.modules() if isinstance(m, Recurrent)]
    for rnn in rnns:
        rnn.forward = functools.partial(scan_forward, rnn)
    try:
        yield model
    finally:
        for rnn in rnns:
            del rnn.forward


# ---- the graphs ---------------------------------------------------------------------------------------
def graphs(model: nn.Module, batch: int = 2, length: int = 5) -> List[Graph]:
    """The inference graphs ``model`` declares (its task's ``export_graphs``: :mod:`zoo.graphs`), with
    example inputs of ``batch`` rows and sequences of ``length`` steps (at least 2 each: torch.export
    fixes an axis traced at size 1). The examples are computed as the graphs are traced: recurrences
    as scans, no gradients. A model with none raises :class:`ExportError` saying why."""
    model.check_built()
    model.eval()
    with torch.no_grad(), scanned(model):
        return model.export_graphs(batch, length)


# ---- writing the files ----------------------------------------------------------------------------------
def export_program(graph: Graph) -> "torch.export.ExportedProgram":
    """``torch.export`` of one graph, its dynamic axes declared, the recurrences as scans."""
    dims: Dict[str, Any] = {}
    shapes = {
        name: {axis: dims.setdefault(label, torch.export.Dim(label)) for axis, label in axes.items()}
        for name, axes in graph.dynamic.items()
    }
    with torch.no_grad(), scanned(graph.module.eval()):  # inference: dropout off in the wrapper too
        return torch.export.export(graph.module, (), graph.inputs, dynamic_shapes=shapes)


def _describe(graph: Graph) -> Dict[str, Any]:
    return {
        "inputs": {
            name: {
                "shape": [graph.dynamic.get(name, {}).get(i, n) for i, n in enumerate(t.shape)],
                "dtype": str(t.dtype).replace("torch.", ""),
            }
            for name, t in graph.inputs.items()
        },
        "outputs": graph.outputs,
    }


def manifest(model: nn.Module, found: Sequence[Graph]) -> Dict[str, Any]:
    """``graphs.json``: the task, each graph's inputs and outputs, the special ids, the decoding settings."""
    hp = model.hparams
    info: Dict[str, Any] = {
        "task": type(model).__name__,
        "cell": hp.get("cell"),
        "graphs": {g.name: _describe(g) for g in found},
        "special_ids": {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID},
        "files": sorted(text_files(dict(hp))),
    }
    for key in model.exported_settings:
        if hp.get(key) is not None:
            info[key] = hp[key]
    return info


def export(model: nn.Module, directory: str | Path, formats: Sequence[str] = FORMATS) -> Dict[str, List[Path]]:
    """Write ``model``'s graphs to ``directory`` as ``<graph>.onnx`` and/or ``<graph>.pt2``, with
    ``graphs.json`` and the vocabulary/tokenizer files. Returns the files written per format."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}: expected {FORMATS}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    found = graphs(model)
    written: Dict[str, List[Path]] = {f: [] for f in formats}
    for graph in found:
        program = export_program(graph)
        if "pt2" in formats:
            path = directory / f"{graph.name}.pt2"
            partial = path.with_name(path.name + ".partial")
            torch.export.save(program, str(partial))
            written["pt2"].append(partial.replace(path))  # nothing half-written under the final name
        if "onnx" in formats:
            written["onnx"].append(_write_onnx(program, graph, directory / f"{graph.name}.onnx"))
    for name, (_, value) in text_files(dict(model.hparams)).items():
        write_atomic(directory / name, json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8"))
    write_atomic(directory / MANIFEST, json.dumps(manifest(model, found), indent=1).encode("utf-8"))
    return written


def _write_onnx(program: "torch.export.ExportedProgram", graph: Graph, path: Path) -> Path:
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's op library)
    except ImportError as error:
        raise ExportError(f"ONNX export needs the export extra: pip install 'zoo[export]' ({error})") from None
    partial = path.with_name(path.name + ".partial")
    onnx_program = torch.onnx.export(
        program, (), kwargs=graph.inputs, dynamo=True, output_names=graph.outputs, external_data=False, verbose=False
    )
    onnx_program.save(str(partial))
    return partial.replace(path)
