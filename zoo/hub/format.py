"""The pretrained folder format (``format_version`` 1): writing it, and reading it back checked.

A folder holds:

- ``config.json``: ``{"format_version": 1, "zoo_version", "task": "module.Class", "init_args": {...},
  "dtype", "params", "files": {name: {"sha256", "size"}}}`` (+ ``"quantized"``). ``init_args``
  rebuild the module (tokenizer/vocab included); ``files`` is the manifest every other file is
  checked against.
- ``model.safetensors``: the state dict (float32, or float16/bfloat16 with ``dtype=``; always read
  back as float32). Large 2-D tables may be stored as int8 rows with one scale each
  (``quantize="embeddings"``), listed in ``config.json``'s ``"quantized"``.
- a human-readable copy of each tokenizer/vocabulary/label list found in ``init_args``
  (``vocab.json``, ``tokenizer.json``, ``label_names.json``, ...), see :func:`text_files`; on read it
  must agree with ``init_args``.
- ``"tied"`` in ``config.json`` (when the model ties weights): ``{name: the name it shares its tensor
  with}``; such a tensor is stored once.

Reading never unpickles: weights are read with safetensors only, and a pickle offered as weights
is recognised by its first bytes and refused with the command that converts a trusted checkpoint.
This module knows no task class: :func:`write_folder` takes any module with ``hparams`` and
``state_dict()``, and :func:`read_folder` returns the task's dotted path as data.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from datamodules.download import write_atomic
from zoo.hub.errors import ChecksumMismatchError, FormatVersionError, MissingFileError, PickleRefusedError, PretrainedError
from zoo.hub.schema import (
    MAX_DEPTH,
    SchemaError,
    check_depth,
    check_keys,
    check_quantized,
    load_bytes,
    max_load_bytes,
    read_header,
)

__all__ = [
    "FORMAT_VERSION",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "INT8_SCHEME",
    "write_folder",
    "read_folder",
    "read_config",
    "text_files",
    "quantize_int8",
    "dequantize_int8",
    "sha256_of",
    "sniff",
    "refuse_pickle",
]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INT8_SCHEME = "int8_rowwise_absmax"
SCALE_SUFFIX = ".__int8_scale__"


# ---- helpers ------------------------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsonable(value: Any, key: str) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, key) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, key) for k, v in value.items()}
    raise PretrainedError(
        f"init argument {key!r} holds a {type(value).__name__}, which config.json cannot store "
        "(only str, numbers, bools, None, lists and dicts)"
    )


def text_files(init_args: Dict[str, Any]) -> Dict[str, Tuple[str, Any]]:
    """The human-readable files written beside the weights: ``{file name: (init arg, JSON value)}``.

    - a list of strings under a key ending in ``vocab`` (``vocab``, ``src_vocab``) -> ``<key>.json``;
    - a JSON-object string under a key containing ``tokenizer`` (a ``tokenizers`` serialization such
      as ``tokenizer_json``) -> ``<key without _json>.json``, loadable by ``Tokenizer.from_file``;
    - a list of strings under ``label_names``/``labels``/``classes`` -> ``<key>.json``.
    """
    out: Dict[str, Tuple[str, Any]] = {}
    for key, value in init_args.items():
        if (
            isinstance(value, list)
            and all(isinstance(v, str) for v in value)
            and (key.endswith("vocab") or key in ("label_names", "labels", "classes"))
        ):
            out[f"{key}.json"] = (key, value)
        elif isinstance(value, str) and "tokenizer" in key and value.lstrip().startswith("{"):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                continue
            stem = key[: -len("_json")] if key.endswith("_json") else key
            out[f"{stem}.json"] = (key, parsed)
    return out


def _zoo_version() -> str:
    # From the installed distribution, not `zoo.__version__`: zoo/__init__.py imports the hub, and the
    # hub imports nothing above it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zoo")
    except PackageNotFoundError:
        return "unknown"


def _write_json(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


# ---- int8 rows ----------------------------------------------------------------------------------
def quantize_int8(weight: torch.Tensor, scale_dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: ``weight ~= q * scale[:, None]``, ``scale = max|row| / 127``."""
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127.0).to(scale_dtype)
    safe = torch.where(scale.float() > 0, scale.float(), torch.ones_like(scale.float()))
    return torch.round(w / safe[:, None]).clamp_(-127, 127).to(torch.int8), scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale.float()[:, None]


# The layer kinds ``quantize`` names by kind: every such module's ``weight`` (2-D: a row per output).
_LAYER_KINDS = {"embeddings": torch.nn.Embedding, "linears": torch.nn.Linear}


def _quantize_keys(model: Any, state: Dict[str, torch.Tensor], quantize: Union[str, Sequence[str], None]) -> List[str]:
    if not quantize:
        return []
    keys: List[str] = []
    for item in [quantize] if isinstance(quantize, str) else list(quantize):
        if item in _LAYER_KINDS:
            modules = model.named_modules() if hasattr(model, "named_modules") else []
            keys += [f"{name}.weight" if name else "weight" for name, m in modules if isinstance(m, _LAYER_KINDS[item])]
        elif item in state:
            keys.append(item)
        else:
            raise PretrainedError(
                f"cannot quantize {item!r}: not a key of the state dict (nor {' or '.join(map(repr, _LAYER_KINDS))})"
            )
    for key in keys:
        if state[key].dim() != 2 or not state[key].is_floating_point():
            raise PretrainedError(
                f"cannot quantize {key!r}: int8 rows need a 2-D floating-point tensor, got {tuple(state[key].shape)} {state[key].dtype}"
            )
    return sorted(set(keys))


def _dequantize(state: Dict[str, torch.Tensor], config: Dict[str, Any], where: Path) -> Dict[str, torch.Tensor]:
    quantized = config.get("quantized") or {}  # its shapes were checked against the header (_check_header)
    for key, info in quantized.items():
        scheme = info.get("scheme") if isinstance(info, dict) else None
        if scheme != INT8_SCHEME:
            raise PretrainedError(
                f"{where}: tensor {key!r} is quantized with scheme {scheme!r}; this zoo reads only {INT8_SCHEME!r}"
            )
        if key not in state or info.get("scale") not in state:
            raise PretrainedError(
                f"{where}: quantized tensor {key!r} or its scale {info.get('scale')!r} is missing from {WEIGHTS_NAME}"
            )
        state[key] = dequantize_int8(state[key], state.pop(info["scale"]))
    return state


# ---- tied tensors ---------------------------------------------------------------------------------
def _tied_keys(state: Dict[str, torch.Tensor]) -> Dict[str, str]:
    """``{key: the first key holding the very same tensor}`` (same storage, offset, shape and strides):
    tied weights, which safetensors would otherwise store twice."""
    first: Dict[Tuple[Any, ...], str] = {}
    tied: Dict[str, str] = {}
    for key, t in state.items():
        if t.device.type == "meta" or t.numel() == 0:
            continue
        identity = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if identity in first:
            tied[key] = first[identity]
        else:
            first[identity] = key
    return tied


def _untie(state: Dict[str, torch.Tensor], config: Dict[str, Any], where: Path) -> Dict[str, torch.Tensor]:
    tied = config.get("tied") or {}
    if not isinstance(tied, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tied.items()):
        raise PretrainedError(f"{where}: key 'tied' must map tensor names to the name they share weights with")
    for key, source in tied.items():
        if source not in state:
            raise PretrainedError(f"{where}: tensor {key!r} is tied to {source!r}, which is missing from {WEIGHTS_NAME}")
        state[key] = state[source]
    return state


# ---- writing ------------------------------------------------------------------------------------
def write_folder(
    model: Any, directory: Union[str, Path], dtype: Optional[torch.dtype] = None, quantize: Union[str, Sequence[str], None] = None
) -> Path:
    """Write ``model`` as a pretrained folder; return the folder.

    ``model`` is any module with ``hparams`` (its init args) and ``state_dict()``; ``config.json``
    records ``type(model)`` as its task. ``dtype=torch.float16`` (or ``bfloat16``) stores
    floating-point tensors at that precision (half the bytes); they read back as float32. Integer
    tensors are stored as they are. ``quantize``: state-dict keys of 2-D tensors (or
    ``"embeddings"``: every ``nn.Embedding`` weight; ``"linears"``: every ``nn.Linear`` weight) to store as int8 with one scale per row (a
    quarter of float32's bytes); they read back dequantized, ``q * scale``. ``config.json`` is written
    last, so a folder with one is complete.
    """
    from safetensors.torch import save

    if not callable(getattr(model, "state_dict", None)):
        raise TypeError(f"write_folder needs a module with state_dict() and hparams, got {type(model).__name__}")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating-point torch.dtype (e.g. torch.float16), got {dtype!r}")
    hparams = getattr(model, "hparams", {}) or {}
    init_args = {k: _jsonable(v, k) for k, v in hparams.items() if not str(k).startswith("_")}
    state = model.state_dict()
    int8_keys = _quantize_keys(model, state, quantize)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    tensors: Dict[str, torch.Tensor] = {}
    quantized: Dict[str, Dict[str, str]] = {}
    tied = _tied_keys(state)
    for key, value in state.items():
        if key in tied:  # stored once, under the first name (a translator's tied embeddings: 4 MB in float16)
            continue
        t = value.detach().to("cpu")
        if key in int8_keys:
            tensors[key], tensors[key + SCALE_SUFFIX] = quantize_int8(t, dtype or torch.float32)
            quantized[key] = {"scheme": INT8_SCHEME, "scale": key + SCALE_SUFFIX}
            continue
        if dtype is not None and t.is_floating_point():
            converted = t.to(dtype)
            if torch.isfinite(t).all() and not torch.isfinite(converted).all():
                raise PretrainedError(
                    f"tensor {key!r} overflows {dtype} (largest |value| {t.abs().max():.3g}); save it in float32"
                )
            t = converted
        tensors[key] = t.clone().contiguous()  # clone: safetensors refuses tensors that share memory
    # One metadata key only: safetensors writes the metadata map in arbitrary order, and the file's
    # sha256 (on the model card) must not change from one export to the next.
    write_atomic(directory / WEIGHTS_NAME, save(tensors, metadata={"format": "pt"}))

    names = [WEIGHTS_NAME]
    for name, (_, value) in text_files(init_args).items():
        _write_json(directory / name, value)
        names.append(name)
    stored = {str(t.dtype).replace("torch.", "") for k, t in tensors.items() if t.is_floating_point() or k in quantized}
    parameters = model.parameters() if callable(getattr(model, "parameters", None)) else state.values()
    config = {
        "format_version": FORMAT_VERSION,
        "zoo_version": _zoo_version(),
        "task": f"{type(model).__module__}.{type(model).__qualname__}",
        "init_args": init_args,
        "dtype": ",".join(sorted(stored)) or "none",
        "params": sum(p.numel() for p in parameters),
        "files": {n: {"sha256": sha256_of(directory / n), "size": (directory / n).stat().st_size} for n in names},
    }
    if quantized:
        config["quantized"] = quantized
    if tied:
        config["tied"] = tied
    _write_json(directory / CONFIG_NAME, config)
    return directory


# ---- reading ------------------------------------------------------------------------------------
def read_config(path: Path) -> Dict[str, Any]:
    """``config.json`` parsed and checked: format version, ``task``, ``init_args``, the manifest."""
    if not path.is_file():
        raise MissingFileError(
            f"{path.parent}: missing {CONFIG_NAME} (a pretrained folder holds {CONFIG_NAME}, {WEIGHTS_NAME} and its tokenizer files)"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise PretrainedError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise PretrainedError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise SchemaError(f"{path}: nested more than {MAX_DEPTH} levels deep; expected plain settings") from None
    if not isinstance(config, dict):
        raise PretrainedError(f"{path}: expected a JSON object, got {type(config).__name__}")
    check_depth(config, str(path))
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        written = f" by zoo {config['zoo_version']}" if "zoo_version" in config else ""
        if isinstance(version, int) and version > FORMAT_VERSION:
            advice = "it comes from a newer zoo: upgrade zoo to load it"
        else:
            advice = "it is not a format this zoo knows"
        raise FormatVersionError(
            f"{path}: format_version {version!r} (written{written or ' by an unknown writer'}); this zoo reads "
            f"format_version {FORMAT_VERSION}: {advice}"
        )
    for key, kind in (("task", str), ("init_args", dict)):
        if not isinstance(config.get(key), kind):
            raise PretrainedError(f"{path}: key {key!r} must be a {kind.__name__}, got {config.get(key)!r}")
    check_keys(config["init_args"], str(path))  # before text_files makes file names of them
    files = config.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(v, dict) and "sha256" in v for v in files.values()):
        raise PretrainedError(f"{path}: key 'files' must map file names to {{'sha256': ..., 'size': ...}}")
    for name in files:
        # Manifest names become local paths and URLs: plain file names only.
        if name in ("", ".", "..") or "/" in name or "\\" in name or name == CONFIG_NAME:
            raise PretrainedError(f"{path}: manifest entry {name!r} is not a plain file name")
    return config


def _is_safetensors(head: bytes, size: int) -> bool:
    # 8 bytes little-endian header length, then the JSON header.
    return len(head) >= 9 and struct.unpack("<Q", head[:8])[0] <= size - 8 and head[8:9] == b"{"


def sniff(path: Path) -> Tuple[bool, Optional[str]]:
    """(is safetensors, what pickle it looks like or None), from the first bytes of ``path``."""
    with open(path, "rb") as f:
        head = f.read(16)
    if _is_safetensors(head, path.stat().st_size):
        return True, None
    if head.startswith(b"PK\x03\x04"):
        return False, "a zip archive as torch.save writes it (pickle inside)"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return False, f"a pickle (protocol {head[1]})"
    return False, None


def refuse_pickle(path: Path, kind: str) -> PickleRefusedError:
    return PickleRefusedError(
        f"{path} is {kind}, not safetensors: refusing to unpickle it (unpickling can run arbitrary code). "
        f"If it is a zoo checkpoint you trust, convert it: zoo export --ckpt {path} --out-dir DIR"
    )


def _read_weights(path: Path) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise MissingFileError(f"{path.parent}: missing {WEIGHTS_NAME}")
    valid, kind = sniff(path)
    if kind:
        raise refuse_pickle(path, kind)
    if not valid:
        raise PretrainedError(f"{path}: not a safetensors file (no valid header)")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise PretrainedError(f"{path}: unreadable safetensors file ({e})") from None


def _verify_manifest(folder: Path, config: Dict[str, Any]) -> None:
    files = config.get("files")
    if not files:  # a hand-made folder without a manifest: the weights must at least be there
        if not (folder / WEIGHTS_NAME).is_file():
            raise MissingFileError(f"{folder}: missing {WEIGHTS_NAME}")
        return
    if WEIGHTS_NAME not in files:
        raise PretrainedError(f"{folder / CONFIG_NAME}: the manifest ('files') does not list {WEIGHTS_NAME}")
    for name, info in files.items():
        path = folder / name
        if not path.is_file():
            raise MissingFileError(f"{folder}: missing {name} (listed in {CONFIG_NAME})")
        actual = sha256_of(path)
        if actual != str(info["sha256"]).lower():
            raise ChecksumMismatchError(
                f"{path}: sha256 {actual} differs from {info['sha256']} recorded in {CONFIG_NAME}: the file "
                "is corrupt or was changed after the folder was written"
            )


def _check_text_files(folder: Path, init_args: Dict[str, Any]) -> None:
    for name, (key, value) in text_files(init_args).items():
        path = folder / name
        if not path.is_file():
            raise MissingFileError(f"{folder}: missing {name} (the readable copy of init argument {key!r})")
        try:
            on_disk = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise PretrainedError(f"{path}: not valid JSON ({e})") from None
        if on_disk != value:
            raise PretrainedError(f"{path} disagrees with init_args[{key!r}] in {CONFIG_NAME}: the folder was edited by hand")


def _check_header(path: Path, config: Dict[str, Any]) -> None:
    """Before a tensor is read: the ``quantized`` entries against the safetensors header, and the
    memory its tensors take as float32 against :func:`~zoo.hub.schema.max_load_bytes`."""
    if not path.is_file() or not sniff(path)[0]:
        return  # _read_weights names what is wrong with the file
    header = read_header(path)
    check_quantized(config.get("quantized") or {}, header, str(path.parent / CONFIG_NAME))
    need, limit = load_bytes(header), max_load_bytes()
    if need > limit:
        raise SchemaError(
            f"{path}: its tensors take {need:,} bytes as float32, more than the limit of {limit:,} "
            "(set ZOO_MAX_LOAD_BYTES to load a model this large that you trust)"
        )


def read_folder(folder: Union[str, Path], weights_sha256: Optional[str] = None) -> Tuple[Dict[str, Any], Dict[str, torch.Tensor]]:
    """Read a pretrained folder, checked: ``(config, state_dict)``.

    ``config`` is ``config.json`` (its ``"task"`` a dotted path, as data; its ``"init_args"``
    complete, tokenizer/vocabulary included and checked against their readable copies); the state
    dict is float32 (int8 rows dequantized). Every file is checked against the manifest's sha256, and
    ``model.safetensors`` against ``weights_sha256`` when given (a model card's)."""
    folder = Path(folder)
    config = read_config(folder / CONFIG_NAME)
    _verify_manifest(folder, config)
    if weights_sha256 is not None:
        actual = sha256_of(folder / WEIGHTS_NAME)
        if actual != weights_sha256.lower():
            raise ChecksumMismatchError(
                f"{folder / WEIGHTS_NAME}: sha256 {actual} differs from {weights_sha256} on the model card"
            )
    _check_text_files(folder, config["init_args"])
    _check_header(folder / WEIGHTS_NAME, config)
    state = _dequantize(_read_weights(folder / WEIGHTS_NAME), config, folder / CONFIG_NAME)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    state = _untie(state, config, folder / CONFIG_NAME)
    return config, state
