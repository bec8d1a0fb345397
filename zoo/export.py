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
:func:`scan_forward` instead: the same cell equations (``Recurrent._equations_step``, i.e.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from datamodules.download import write_atomic
from datamodules.tokenizers import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from zoo.errors import UserError
from zoo.hub.format import text_files
from zoo.recurrent import Recurrent, RecurrentOutput, Weights, reverse_padded
from zoo.sequences import State, hidden_of, lengths_to_mask
from zoo.streaming import check_streamable

FORMATS = ("onnx", "pt2")
MANIFEST = "graphs.json"


class ExportError(UserError, ValueError):
    """A model (or part of one) that has no exportable inference graph, with the reason."""


# ---- the recurrence as a scan ---------------------------------------------------------------------
def _scan_direction(rnn: Recurrent, x: Tensor, h0: State, w: Weights, mask: Optional[Tensor]) -> Tuple[Tensor, State]:
    """One direction of one layer over ``x`` ``(B, T, input)``: outputs ``(B, T, H)`` (zero at padded
    steps) and the final state (each sequence's state after its last real step)."""
    from torch._higher_order_ops.scan import scan

    step = rnn._equations_step(w.hh, w.b_hh)
    x_proj = F.linear(x, w.ih, w.b_ih).transpose(0, 1)  # (T, B, gates * H), the hoisted projection
    keep = (mask if mask is not None else torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)).t().unsqueeze(-1)

    def combine(state, inputs):
        x_t, keep_t = inputs
        new, _ = step(x_t, state)
        new = tuple(map(torch.where, (keep_t,) * 2, new, state)) if isinstance(new, tuple) else torch.where(keep_t, new, state)
        return new, hidden_of(new) * keep_t  # a new tensor: scan's outputs may not alias its carry

    h0 = tuple(s.clone() for s in h0) if isinstance(h0, tuple) else h0  # (zeros, zeros) is one tensor twice: scan refuses aliases
    final, out = scan(combine, h0, (x_proj, keep))
    return out.transpose(0, 1), final


def scan_forward(rnn: Recurrent, x: Tensor, lengths: Optional[Tensor] = None, state: Optional[State] = None,
                 **unused: Any) -> RecurrentOutput:
    """:meth:`Recurrent.forward` (output and final state) traceable with dynamic batch and length."""
    mask = lengths_to_mask(lengths, x.shape[1], device=x.device) if lengths is not None else None
    D, lstm, finals = rnn.num_directions, isinstance(state, tuple) or rnn.cell == "lstm", []
    for index, layer in enumerate(rnn.layers):
        layer_state = None
        if state is not None:
            rows = slice(index * D, (index + 1) * D)
            layer_state = (state[0][rows], state[1][rows]) if isinstance(state, tuple) else state[rows]
        outs, layer_finals = [], []
        for direction in range(D):
            inputs = reverse_padded(x, lengths) if direction else x
            h0 = rnn._initial(layer_state, direction, x.shape[0], x)
            out, final = _scan_direction(rnn, inputs, h0, Weights.of(layer, direction), mask)
            outs.append(reverse_padded(out, lengths) if direction else out)
            layer_finals.append(final)
        x = torch.cat(outs, -1)
        finals.append((torch.stack([f[0] for f in layer_finals]), torch.stack([f[1] for f in layer_finals]))
                      if lstm else torch.stack(layer_finals))
    final_state = (torch.cat([f[0] for f in finals]), torch.cat([f[1] for f in finals])) if lstm else torch.cat(finals)
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
def _state_args(h: Tensor, c: Optional[Tensor]) -> State:
    return h if c is None else (h, c)


def _state_outs(state: State) -> Tuple[Tensor, ...]:
    return tuple(state) if isinstance(state, tuple) else (state,)


class LMStep(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, h: Tensor, c: Optional[Tensor] = None):
        logits, state = self.model(ids[:, None], _state_args(h, c))
        return (F.log_softmax(logits[:, 0].float(), -1), *_state_outs(state))


class ClassifierForward(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        return torch.softmax(self.model(ids, lengths).float(), -1)


class TranslatorEncoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, src: Tensor, src_lengths: Tensor):
        enc = self.model.encode(src, src_lengths)
        keys = () if enc.keys is None else (enc.keys,)
        return (enc.memory, enc.mask, enc.summary, *keys, *_state_outs(self.model.initial_state(enc)))


class TranslatorStep(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, prev: Tensor, memory: Tensor, mask: Tensor, summary: Tensor, h: Tensor,
                keys: Optional[Tensor] = None, c: Optional[Tensor] = None):
        from zoo.tasks.seq2seq import Encoded

        logits, state, weights = self.model.decode_step(prev, _state_args(h, c), Encoded(memory, keys, mask, summary))
        extra = () if weights is None else (weights,)
        return (torch.log_softmax(logits.float(), -1), *_state_outs(state), *extra)


class CaptionerEncoder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor):
        memory = self.model.memory({"images": images})
        keys = () if self.model.hparams.attention == "none" else (self.model.attend.project(memory),)
        return (memory, *keys, *_state_outs(self.model.initial_state(memory)))


class CaptionerStep(nn.Module):
    """One step of :meth:`ImageCaptioner._decode_memory`'s search (soft attention, or hard attention's
    argmax as at inference), without its bans (``<pad>``, ``<bos>``, ``<unk>``): a caller's choice."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, memory: Tensor, h: Tensor, keys: Optional[Tensor] = None, c: Optional[Tensor] = None):
        model, state = self.model, _state_args(h, c)
        words = model.embed(tokens)
        if keys is None:  # attention "none": the Recurrent, state (B, H) as the search keeps it
            out = model.rnn(words[:, None], state=tuple(s[None] for s in state) if c is not None else state[None])
            new = tuple(s[0] for s in out.state) if c is not None else out.state[0]
            logits, extra = model.out(out.output[:, 0]), ()
        else:
            mode = "soft" if model.hparams.attention == "soft" else "argmax"
            logits, new, alpha, _ = model.attend_step(words, state, memory, keys, mode)
            extra = (alpha,)
        return (torch.log_softmax(logits.float(), -1), *_state_outs(new), *extra)


class FrameStep(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: Tensor, h: Optional[Tensor] = None, c: Optional[Tensor] = None):
        model = self.model
        features = model.frame_vectors(frames)
        if model.rnn is None:
            return (torch.softmax(model.head(model.mlp(features)).float(), -1),)
        out = model.rnn(features[:, None], state=_state_args(h, c))
        return (torch.softmax(model.head(out.output[:, 0]).float(), -1), *_state_outs(out.state))


@dataclass
class Graph:
    """One graph to export: the module, example inputs (by name), output names, and for each input its
    dynamic axes ``{axis: name}``."""

    name: str
    module: nn.Module
    inputs: Dict[str, Tensor]
    outputs: List[str]
    dynamic: Dict[str, Dict[int, str]] = field(default_factory=dict)


def _state_inputs(layers: int, batch: int, hidden: int, lstm: bool, gen: torch.Generator) -> Dict[str, Tensor]:
    h = torch.randn(layers, batch, hidden, generator=gen) * 0.5
    return {"h": h, "c": torch.randn(layers, batch, hidden, generator=gen) * 0.5} if lstm else {"h": h}


def _next(names: List[str]) -> List[str]:
    """A step graph's state outputs: ``h_next`` for the input ``h`` (ONNX names must be unique)."""
    return [f"{name}_next" for name in names]


def _batch_axes(inputs: Dict[str, Tensor], axis_of_batch: Dict[str, int],
                time: Optional[Dict[str, Tuple[int, str]]] = None) -> Dict[str, Dict[int, str]]:
    """Every input's batch axis (0, or the state's 1) and the named length axes, all dynamic."""
    dynamic = {name: {axis_of_batch.get(name, 0): "batch"} for name in inputs}
    for name, (axis, label) in (time or {}).items():
        if name in dynamic:  # "keys" only where the model attends
            dynamic[name][axis] = label
    return dynamic


def graphs(model: nn.Module, batch: int = 2, length: int = 5) -> List[Graph]:
    """The inference graphs of ``model`` (any zoo task), with example inputs of ``batch`` rows and
    sequences of ``length`` steps (at least 2 each: torch.export fixes an axis traced at size 1)."""
    from zoo.tasks.captioner import ImageCaptioner
    from zoo.tasks.classifier import SequenceClassifier
    from zoo.tasks.frame_classifier import FrameClassifier
    from zoo.tasks.language_model import CharLanguageModel
    from zoo.tasks.seq2seq import Seq2Seq

    model.check_built()
    model.eval()
    gen = torch.Generator().manual_seed(0)
    hp = model.hparams
    lstm = hp.cell == "lstm"
    state_names = ["h", "c"] if lstm else ["h"]
    if isinstance(model, CharLanguageModel):
        rnn = model.rnn
        inputs = {"ids": torch.randint(1, len(model.vocab), (batch,), generator=gen),
                  **_state_inputs(rnn.num_layers, batch, rnn.hidden_size, lstm, gen)}
        return [Graph("lm_step", LMStep(model), inputs, ["log_probs", *_next(state_names)], _batch_axes(inputs, {"h": 1, "c": 1}))]
    if isinstance(model, SequenceClassifier):
        inputs = {"ids": torch.randint(4, model.tokenizer.get_vocab_size(), (batch, length), generator=gen),
                  "lengths": torch.arange(length, length - batch, -1).clamp(min=1)}
        return [Graph("classifier", ClassifierForward(model), inputs, ["probs"], _batch_axes(inputs, {}, {"ids": (1, "time")}))]
    if isinstance(model, Seq2Seq):
        return _translator_graphs(model, batch, length, lstm, gen)
    if isinstance(model, ImageCaptioner):
        return _captioner_graphs(model, batch, lstm, gen)
    if isinstance(model, FrameClassifier):
        return [_frame_graph(model, batch, lstm, gen)]
    raise ExportError(f"no inference graphs are defined for {type(model).__name__}")


def _translator_graphs(model: nn.Module, batch: int, length: int, lstm: bool, gen: torch.Generator) -> List[Graph]:
    src = {"src": torch.randint(4, model.tokenizer("source").get_vocab_size(), (batch, length), generator=gen),
           "src_lengths": torch.arange(length, length - batch, -1).clamp(min=1)}
    with torch.no_grad(), scanned(model):
        encoded = TranslatorEncoder(model)(**src)
    attends = model.attention is not None
    enc_names = ["memory", "mask", "summary"] + (["keys"] if attends else []) + (["h", "c"] if lstm else ["h"])
    enc = dict(zip(enc_names, encoded))
    step = {"prev": torch.randint(4, model.tokenizer("target").get_vocab_size(), (batch,), generator=gen), **enc}
    dynamic = _batch_axes(step, {"h": 1, "c": 1}, {"memory": (1, "source"), "mask": (1, "source"), "keys": (1, "source")})
    outs = ["log_probs", *_next(["h", "c"] if lstm else ["h"])] + (["attention"] if attends else [])
    return [
        Graph("encoder", TranslatorEncoder(model), src, enc_names, _batch_axes(src, {}, {"src": (1, "source")})),
        Graph("decoder_step", TranslatorStep(model), step, outs, dynamic),
    ]


def _captioner_graphs(model: nn.Module, batch: int, lstm: bool, gen: torch.Generator) -> List[Graph]:
    size = model.image_config().size  # normalised images, as the datamodule's transform gives them
    images = {"images": torch.rand(batch, 3, size, size, generator=gen)}
    with torch.no_grad():
        encoded = CaptionerEncoder(model)(**images)
    attends = model.hparams.attention != "none"
    enc_names = ["memory"] + (["keys"] if attends else []) + (["h", "c"] if lstm else ["h"])
    step = {"tokens": torch.randint(4, model.vocab_size, (batch,), generator=gen), **dict(zip(enc_names, encoded))}
    outs = ["log_probs", *_next(["h", "c"] if lstm else ["h"])] + (["attention"] if attends else [])
    return [
        Graph("encoder", CaptionerEncoder(model), images, enc_names, _batch_axes(images, {})),
        Graph("decoder_step", CaptionerStep(model), step, outs, _batch_axes(step, {})),
    ]


def _frame_graph(model: nn.Module, batch: int, lstm: bool, gen: torch.Generator) -> Graph:
    if model.encoder is None:
        raise ExportError("this FrameClassifier reads precomputed features (encoder: null): export a model with a backbone")
    try:
        check_streamable(model.rnn, "frame classifier")
    except ValueError as error:
        raise ExportError(f"{error}; there is no step graph to export") from None
    if model.rnn is None and model.hparams.target == "clip":
        raise ExportError("recurrent: false with target: clip averages every frame of the clip: it has no step graph "
                          "(export the recurrent model, or the per-frame baseline with target: frame)")
    size = model.hparams.frame_size or 32
    inputs: Dict[str, Tensor] = {"frames": torch.randint(0, 256, (batch, 3, size, size), generator=gen, dtype=torch.uint8)}
    names = ["probs"]
    if model.rnn is not None:
        inputs.update(_state_inputs(model.rnn.num_layers, batch, model.rnn.hidden_size, lstm, gen))
        names += _next(["h", "c"] if lstm else ["h"])
    return Graph("frame_step", FrameStep(model), inputs, names, _batch_axes(inputs, {"h": 1, "c": 1}))


# ---- writing the files ----------------------------------------------------------------------------------
def export_program(graph: Graph) -> "torch.export.ExportedProgram":
    """``torch.export`` of one graph, its dynamic axes declared, the recurrences as scans."""
    dims: Dict[str, Any] = {}
    shapes = {name: {axis: dims.setdefault(label, torch.export.Dim(label)) for axis, label in axes.items()}
              for name, axes in graph.dynamic.items()}
    with torch.no_grad(), scanned(graph.module.eval()):  # inference: dropout off in the wrapper too
        return torch.export.export(graph.module, (), graph.inputs, dynamic_shapes=shapes)


def _describe(graph: Graph) -> Dict[str, Any]:
    return {
        "inputs": {name: {"shape": [graph.dynamic.get(name, {}).get(i, n) for i, n in enumerate(t.shape)], "dtype": str(t.dtype).replace("torch.", "")}
                   for name, t in graph.inputs.items()},
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
    for key in ("max_len_a", "max_len_b", "max_len", "label_names"):
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
    onnx_program = torch.onnx.export(program, (), kwargs=graph.inputs, dynamo=True, output_names=graph.outputs,
                                     external_data=False, verbose=False)
    onnx_program.save(str(partial))
    return partial.replace(path)
