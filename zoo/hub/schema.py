"""What a model file may state: the bounds on every value a ``config.json``, a checkpoint's
hyper-parameters or a safetensors header hands the zoo, checked before anything is built or allocated.

A file is data someone else wrote. It may say how large the network is and how it decodes, within
:data:`BOUNDS`; it may not choose the network (``pretrained: true``, ``weights_path``, an
``hf-hub:`` encoder: :func:`offline`), a path outside its folder (init-arg keys are identifiers), an
unbounded structure (:data:`MAX_DEPTH`, :data:`MAX_ITEMS`, :data:`MAX_TEXT`) or unbounded memory
(:func:`load_bytes` against :func:`max_load_bytes`). Every refusal is one
:class:`~zoo.hub.errors.PretrainedError` line naming the file, the key and what was expected.

The bounds hold the *file's* values only: a value the user passes (``load_pretrained(..., beam_size=200)``,
``--beam_size`` of a command, a recipe's ``init_args``) is the user's word and is not bounded here, and
``ZOO_MAX_LOAD_BYTES`` (an environment variable, the user's) raises the memory limit.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from zoo.hub.errors import PretrainedError

__all__ = [
    "Bound",
    "BOUNDS",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_TEXT",
    "MAX_LOAD_BYTES",
    "SchemaError",
    "check_depth",
    "check_keys",
    "check_args",
    "offline",
    "network_choices",
    "read_header",
    "check_quantized",
    "load_bytes",
    "max_load_bytes",
]


class SchemaError(PretrainedError):
    """A value in a model file is of the wrong type, out of its bounds, or too deeply nested."""


@dataclass(frozen=True)
class Bound:
    """A number a file may state: of type ``kind`` (``int``, or ``float``, which takes ints too), in
    ``[low, high]``; ``None`` is always allowed (the task's default)."""

    kind: type
    low: float
    high: float

    def check(self, key: str, value: Any, where: str) -> None:
        kinds = (int, float) if self.kind is float else (int,)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise SchemaError(
                f"{where}: init arg {key}={_short(value)} must be {'a number' if self.kind is float else 'an integer'} "
                f"in [{self.low:g}, {self.high:g}]"
            )
        if not (isinstance(value, int) or math.isfinite(value)) or not self.low <= value <= self.high:
            raise SchemaError(
                f"{where}: init arg {key}={_short(value)} is outside [{self.low:g}, {self.high:g}], the bound on "
                f"what a file may state (pass it yourself, e.g. load_pretrained(..., {key}=...), if you mean it)"
            )


_WIDTH, _LAYERS, _RATE = Bound(int, 1, 65536), Bound(int, 1, 64), Bound(float, 0.0, 1.0)
#: the bounds on every size and decoding setting of the zoo's tasks, as a file may state them
BOUNDS: Dict[str, Bound] = {
    **dict.fromkeys(
        ("hidden_size", "embedding_dim", "attention_dim", "decoder_hidden_size", "feature_dim", "classifier_hidden"), _WIDTH
    ),
    **dict.fromkeys(("num_layers", "decoder_layers", "feature_layers", "hops"), _LAYERS),
    **dict.fromkeys(
        (
            "dropout",
            "embedding_dropout",
            "teacher_forcing",
            "label_smoothing",
            "hard_soft_mix",
            "hard_baseline_decay",
            "min_lr_ratio",
        ),
        _RATE,
    ),
    "beam_size": Bound(int, 1, 64),
    "max_len": Bound(int, 1, 4096),
    "max_len_a": Bound(float, 0.0, 16.0),
    "max_len_b": Bound(int, 0, 4096),
    "length_penalty": Bound(float, 0.0, 10.0),
    "temperature": Bound(float, 1e-3, 100.0),
    "top_k": Bound(int, 1, 1_000_000),
    "length": Bound(int, 1, 1_000_000),
    "frame_size": Bound(int, 1, 4096),
    "text_max_tokens": Bound(int, 1, 100_000),
    "question_max_tokens": Bound(int, 1, 100_000),
    "log_images": Bound(int, 0, 64),
    "log_alignments": Bound(int, 0, 64),
}
#: the deepest nesting of lists and dicts a file may hold (a tokenizer's JSON is about 6 deep)
MAX_DEPTH = 32
#: the most entries of one list (a vocabulary, a label set)
MAX_ITEMS = 2_000_000
#: the longest string (a tokenizer's JSON), in characters
MAX_TEXT = 64 * 2**20
#: the most bytes a folder's tensors may take once read as float32, unless ``ZOO_MAX_LOAD_BYTES`` says more
MAX_LOAD_BYTES = 16 * 2**30
#: the largest safetensors header read (safetensors' own limit)
MAX_HEADER = 100 * 2**20


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_depth(value: Any, where: str, limit: int = MAX_DEPTH) -> None:
    """Refuse lists and dicts nested deeper than ``limit`` (walked without recursion), strings longer
    than :data:`MAX_TEXT` and lists longer than :data:`MAX_ITEMS`."""
    pending: List[Tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str) and len(item) > MAX_TEXT:
            raise SchemaError(f"{where}: a string of {len(item):,} characters; a file may hold at most {MAX_TEXT:,}")
        if not isinstance(item, (list, tuple, dict)):
            continue
        if depth >= limit:
            raise SchemaError(
                f"{where}: nested more than {limit} levels deep; expected plain settings (lists and objects at most {limit} deep)"
            )
        if len(item) > MAX_ITEMS:
            raise SchemaError(f"{where}: a list or object of {len(item):,} entries; a file may hold at most {MAX_ITEMS:,}")
        pending += [(v, depth + 1) for v in (item.values() if isinstance(item, dict) else item)]


def check_keys(args: Mapping[Any, Any], where: str) -> None:
    """Every init-arg name is an identifier: never a path (``../../x_vocab``), a number or empty."""
    for key in args:
        if not isinstance(key, str) or not key.isidentifier():
            raise SchemaError(
                f"{where}: init arg name {_short(key)} is not an identifier; expected argument names such as 'hidden_size'"
            )


def check_args(args: Mapping[Any, Any], where: str) -> None:
    """The init args a file states: keys are identifiers (a key is never a path: ``text_files``
    turns ``*vocab`` keys into file names), values nested at most :data:`MAX_DEPTH` deep, every size
    and decoding setting within :data:`BOUNDS`, and no network choice (:func:`network_choices`)."""
    check_keys(args, where)
    check_depth(dict(args), where)
    for key, value in args.items():
        if key in BOUNDS:
            BOUNDS[key].check(key, value, where)
    encoder = args.get("encoder")
    if encoder is not None and not (isinstance(encoder, str) and encoder and not any(c in encoder for c in ":/\\")):
        raise SchemaError(
            f"{where}: init arg encoder={_short(encoder)} is not a timm model name; a file may not name a "
            "Hub repo or a path ('hf-hub:', 'local-dir:', '/'): pass it yourself if you mean it"
        )


def network_choices(args: Mapping[str, Any]) -> Dict[str, Any]:
    """What in ``args`` would make loading reach the network or the file system: ``pretrained: true``
    (timm fetches the encoder from the Hub) and a ``weights_path``."""
    return {k: args[k] for k in ("pretrained", "weights_path") if args.get(k) not in (None, False)}


def offline(args: Mapping[str, Any]) -> Dict[str, Any]:
    """``args`` with the network choices a file makes switched off: ``pretrained`` False and
    ``weights_path`` None where present. The weights come from the file itself, never from elsewhere."""
    out = dict(args)
    for key, off in (("pretrained", False), ("weights_path", None)):
        if key in out:
            out[key] = off
    return out


# ---- the safetensors header: shapes and memory before any tensor is read --------------------------
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def read_header(path: Path) -> Dict[str, Tuple[str, Tuple[int, ...]]]:
    """``{tensor name: (dtype, shape)}`` from ``path``'s safetensors header, checked for types; no
    tensor is read. The data offsets are checked by safetensors when the tensors are read."""
    with open(path, "rb") as f:
        head = f.read(8)
        size = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < size <= min(MAX_HEADER, path.stat().st_size - 8):
            raise SchemaError(f"{path}: not a safetensors file (header length {size})")
        raw = f.read(size)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise SchemaError(f"{path}: unreadable safetensors header ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise SchemaError(f"{path}: the safetensors header is not an object")
    out: Dict[str, Tuple[str, Tuple[int, ...]]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        dtype = info.get("dtype") if isinstance(info, dict) else None
        if dtype not in _DTYPE_BYTES or not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise SchemaError(
                f"{path}: tensor {_short(name)}: expected a dtype of {sorted(_DTYPE_BYTES)} and a shape of "
                f"non-negative integers, got {_short(info)}"
            )
        out[name] = (dtype, tuple(shape))
    return out


def check_quantized(quantized: Any, header: Mapping[str, Tuple[str, Tuple[int, ...]]], where: str) -> None:
    """Every ``quantized`` entry of ``config.json`` against the header, before anything is read: the
    tensor is 2-D int8 ``(rows, cols)``, its scale a 1-D float ``(rows,)``, both present."""
    if not isinstance(quantized, dict):
        raise SchemaError(f"{where}: key 'quantized' must map tensor names to {{'scheme', 'scale'}}, got {_short(quantized)}")
    for key, info in quantized.items():
        scale = info.get("scale") if isinstance(info, dict) else None
        if not isinstance(scale, str):
            raise SchemaError(f"{where}: quantized tensor {_short(key)}: 'scale' must name a tensor, got {_short(scale)}")
        if key not in header or scale not in header:
            continue  # named as missing by the reader, with the file
        (qtype, qshape), (stype, sshape) = header[key], header[scale]
        if qtype != "I8" or len(qshape) != 2 or stype not in ("F32", "F16", "BF16") or sshape != qshape[:1]:
            raise SchemaError(
                f"{where}: quantized tensor {key!r} is {qtype} {list(qshape)} with scale {stype} {list(sshape)}; "
                "expected int8 (rows, cols) with a float scale (rows,)"
            )


def load_bytes(header: Mapping[str, Tuple[str, Tuple[int, ...]]]) -> int:
    """The bytes the tensors take once read: floating-point and int8 tensors as float32 (how the zoo
    reads them back), other integers at their own width."""
    total = 0
    for dtype, shape in header.values():
        width = 4 if dtype in ("F16", "BF16", "F32", "I8") else _DTYPE_BYTES[dtype]
        total += math.prod(shape) * width
    return total


def max_load_bytes() -> int:
    """:data:`MAX_LOAD_BYTES`, or the user's ``ZOO_MAX_LOAD_BYTES``."""
    value: Optional[str] = os.environ.get("ZOO_MAX_LOAD_BYTES")
    try:
        return int(value) if value else MAX_LOAD_BYTES
    except ValueError:
        raise SchemaError(f"ZOO_MAX_LOAD_BYTES={value!r} is not a number of bytes") from None
