"""zoo: a PyTorch Lightning model zoo of recurrent networks."""

from typing import Any

from zoo.cells import GRUCell, LSTMCell, MinGRUCell, MinLSTMCell, RNNCell
from zoo.hub.registry import list_models
from zoo.recurrent import Recurrent, RecurrentOutput

__version__ = "0.1.0"

__all__ = [
    "RNNCell",
    "GRUCell",
    "LSTMCell",
    "MinGRUCell",
    "MinLSTMCell",
    "Recurrent",
    "RecurrentOutput",
    "list_models",
    "load_pretrained",
    "create_model",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # zoo.load_pretrained / zoo.create_model live with the tasks (zoo.tasks.base), which import Lightning:
    # loaded on first use, so `import zoo` (or zoo.cells) stays light.
    if name in ("load_pretrained", "create_model"):
        from zoo.tasks import base

        return getattr(base, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
