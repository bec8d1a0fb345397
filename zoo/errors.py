"""The zoo's user errors, for code that uses the zoo: :class:`UserError` is what the commands end in
one line and exit status 2 (any other exception is a bug and keeps its traceback), with its kinds
:class:`InputError` (a bad value or input, also a ``ValueError``) and :class:`MissingInputError` (a
file the user named is not there, also a ``FileNotFoundError``). Defined in :mod:`datamodules.errors`,
the bottom layer, so that the data readers raise them too; every error the zoo raises for a bad file,
model, download or value subclasses them (``DataFormatError``, ``PretrainedError``, ``ChecksumError``, ...)."""

from datamodules.errors import DataFormatError, InputError, MissingDataError, MissingInputError, NotAFileError, UserError, summary

__all__ = ["DataFormatError", "InputError", "MissingDataError", "MissingInputError", "NotAFileError", "UserError", "summary"]
