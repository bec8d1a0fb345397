"""zoo: a PyTorch Lightning model zoo of recurrent networks."""

from zoo.cells import GRUCell, LSTMCell, RNNCell
from zoo.recurrent import Recurrent, RecurrentOutput
from zoo.hub import list_models, create_model, load_pretrained

__version__ = "0.1.0"

__all__ = ["RNNCell", "GRUCell", "LSTMCell", "Recurrent", "RecurrentOutput", "__version__"]
