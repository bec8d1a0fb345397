"""PyTorch Hub entry points (PyTorch's convention for model zoos): one function per registered model.

    import torch
    model = torch.hub.load("path/to/this/checkout", "imdb_bigru", source="local")   # pretrained=True
    torch.hub.list("path/to/this/checkout", source="local")                         # every registered name

Each entry point is ``name(pretrained=True, **overrides)`` -> ``zoo.create_model(name, pretrained=...,
**overrides)``: the shipped weights come from the package (no network), ``overrides`` change the
registered configuration (``pretrained=False``: a fresh model to train). The functions are made from
the registry (zoo/hub/models.py), so a newly registered model is an entry point at once.
"""

# Every public callable here is an entry point (torch.hub.list takes dir(hubconf)): imports stay private.
from typing import Any as _Any
from typing import Callable as _Callable

from zoo import create_model as _create_model
from zoo import list_models as _list_models
from zoo.hub import model_entry as _model_entry

dependencies = ["torch", "lightning", "torchmetrics", "timm", "tokenizers", "safetensors", "sacrebleu"]


def _entry_point(name: str) -> _Callable[..., _Any]:
    def entry_point(pretrained: bool = True, **overrides: _Any) -> _Any:
        return _create_model(name, pretrained=pretrained, **overrides)

    entry = _model_entry(name)
    entry_point.__name__ = entry_point.__qualname__ = name
    entry_point.__doc__ = (
        f"{entry.description}\n\n``pretrained=True``: the shipped weights (see docs/pretrained.md); "
        f"``overrides``: init arguments that replace the registered ones."
    )
    return entry_point


# torch.hub.list() shows the public callables of this module: one per registered name.
globals().update({_name: _entry_point(_name) for _name in _list_models()})
