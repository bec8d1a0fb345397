"""Named pretrained models: a timm-style registry, a safetensors folder format, four sources.

The hub is data and file format, below the tasks (it never imports ``zoo.tasks`` or ``zoo.cli``):

- :mod:`zoo.hub.errors`: the errors of model files (each a ``ValueError``);
- :mod:`zoo.hub.registry`: :class:`ModelCard`, :class:`ModelEntry`, :func:`register_model`,
  :func:`list_models`, :func:`model_entry`; an entry names its task class by a dotted path;
- :mod:`zoo.hub.models`: the registered models and their cards;
- :mod:`zoo.hub.format`: :func:`write_folder` / :func:`read_folder` (safetensors, int8 rows,
  manifest and sha256 checks, pickle refusal);
- :mod:`zoo.hub.sources`: :func:`locate` (registered name, local folder or archive, URL, Hub repo)
  and :func:`push_to_hub`;
- :mod:`zoo.hub.cards`: :func:`models_markdown` (docs/pretrained.md) and :func:`model_rows` (``zoo models``).

Building a module from a folder is the tasks' job: ``zoo.load_pretrained``, ``zoo.create_model``
and ``TaskModule.from_pretrained``/``save_pretrained`` live in :mod:`zoo.tasks.base`.
"""

from zoo.hub import models as _models  # noqa: F401  (registers the zoo's models)
from zoo.hub import models_char as _models_char  # noqa: F401  (registers the character LMs)
from zoo.hub import models_shapes as _models_shapes  # noqa: F401  (registers the Shapes tasks' models)
from zoo.hub.cards import model_rows, models_markdown
from zoo.hub.errors import (
    CheckpointError,
    ChecksumMismatchError,
    FormatVersionError,
    MissingFileError,
    NoWeightsError,
    PickleRefusedError,
    PretrainedError,
    RemoteError,
    TaskNameError,
    UnknownModelError,
)
from zoo.hub.format import CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME, read_folder, text_files, write_folder
from zoo.hub.registry import ModelCard, ModelEntry, list_models, model_entry, register_model
from zoo.hub.sources import locate, push_to_hub

__all__ = [
    "FORMAT_VERSION",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "ModelCard",
    "ModelEntry",
    "register_model",
    "list_models",
    "model_entry",
    "PretrainedError",
    "UnknownModelError",
    "NoWeightsError",
    "MissingFileError",
    "ChecksumMismatchError",
    "FormatVersionError",
    "PickleRefusedError",
    "RemoteError",
    "CheckpointError",
    "TaskNameError",
    "write_folder",
    "read_folder",
    "text_files",
    "locate",
    "push_to_hub",
    "models_markdown",
    "model_rows",
]
