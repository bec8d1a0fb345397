"""The errors of model files: pretrained folders, their sources, Lightning checkpoints, task names.

Each is a :class:`zoo.errors.UserError` (one line and exit status 2 in the commands) and also a
``ValueError`` (and some a ``FileNotFoundError`` or ``KeyError``), so callers can treat them as bad
input without importing this module. Every message names the
file, key or name at fault and what was expected.
"""

from __future__ import annotations

from datamodules.errors import UserError

__all__ = [
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
]


class PretrainedError(UserError, ValueError):
    """Something about a model file is wrong; the message names the file or key at fault."""


class UnknownModelError(PretrainedError, KeyError):
    """A name that is neither registered nor a path, URL or Hub repo id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NoWeightsError(PretrainedError):
    """The configuration is registered, but no pretrained weights exist for it (yet)."""


class MissingFileError(PretrainedError, FileNotFoundError):
    """A pretrained folder lacks a file its format (or its manifest) requires."""


class ChecksumMismatchError(PretrainedError):
    """A file's sha256 differs from the one its manifest, card or pin expects."""


class FormatVersionError(PretrainedError):
    """``config.json`` was written in a format this version of the zoo cannot read."""


class PickleRefusedError(PretrainedError):
    """A pickle (``torch.save`` / Lightning checkpoint) was offered where safetensors weights belong."""


class RemoteError(PretrainedError):
    """A URL or Hub download failed (network, HTTP status, repo or file not found)."""


class CheckpointError(PretrainedError):
    """A Lightning checkpoint is unreadable, holds more than tensors and plain data, or lacks a key."""


class TaskNameError(PretrainedError):
    """A file (or ``--task``) names something that is not a zoo task class; refused before it is
    imported or called."""
