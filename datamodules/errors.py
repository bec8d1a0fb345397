"""The zoo's user errors: mistakes a user can fix (a bad file, a missing file, a bad value).

Every error the zoo raises for something the user gave it subclasses :class:`UserError`; the commands
print exactly these as one line, ``zoo COMMAND: error: MESSAGE``, and exit with status 2. Any other
exception is a bug and keeps its traceback (docs/api.md, "Errors"). This module is the bottom layer:
it imports nothing, so every reader in ``datamodules`` and every layer of ``zoo`` can raise them
(``zoo.errors`` re-exports it).

Each also subclasses the built-in error a caller would expect (``ValueError`` for a bad value or a
bad file, ``FileNotFoundError`` for a missing one), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import re

__all__ = ["DataFormatError", "InputError", "MissingDataError", "MissingInputError", "NotAFileError", "UserError", "summary"]


class UserError(Exception):
    """A mistake the user can fix; the message names the file, line, key or value at fault and what
    was expected, on one line."""


class InputError(UserError, ValueError):
    """A bad value or input: an option out of range, an empty text, a file of the wrong kind."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder the user named is not there."""


class NotAFileError(InputError, IsADirectoryError):
    """A folder was given where a file was expected."""


class DataFormatError(InputError):
    """A data file does not look as expected; the message names the file (and line) at fault."""


class MissingDataError(MissingInputError):
    """A dataset's files are not where they should be; the message says what is missing, where to put
    it and how to download it."""


def summary(error: BaseException, limit: int = 160) -> str:
    """An upstream library's message in one line of whole sentences, for a user error to quote: its
    type and first sentence (whitespace collapsed), then further sentences while they fit ``limit``
    characters. PyTorch's refusal of a pickle (``Weights only load failed. ...``) is summarised from its
    cause (``Unsupported global: ...``, ``Trying to load unsupported GLOBAL ...``), not its advice. Never cut inside a sentence: a first sentence
    longer than ``limit`` is kept whole."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # no terminal colours
    if text.startswith("Weights only load failed"):  # PyTorch: advice first, the cause in a later paragraph
        cause = re.search(r"WeightsUnpickler error: (.*?)(?:\n\s*\n|$)", text, re.S)
        later = [p for p in re.split(r"\n\s*\n", text)[1:] if p.strip() and not p.strip().startswith("Check the documentation")]
        text = cause.group(1) if cause else (later[0] if later else text)
    text = " ".join(text.split())
    sentences = [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(\[`'\"])", text) if s]
    kept = sentences[:1]
    for sentence in sentences[1:]:
        if len(" ".join(kept + [sentence])) > limit:
            break
        kept.append(sentence)
    told = " ".join(kept).rstrip()
    more = " ..." if len(kept) < len(sentences) else ""
    return f"{type(error).__name__}: {told}{more}" if told else type(error).__name__
