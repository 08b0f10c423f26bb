"""The exceptions the library raises for problems a user can cause.

Each subclasses ValueError (or RuntimeError), so plain `except ValueError` keeps
working; messages name the file or setting and the problem, never a command-line
flag (the CLI adds those).
"""

from __future__ import annotations


class GoogLeNetError(Exception):
    """Base class of every error the library raises on purpose.

    `setting`: the text in the message that names the library setting which resolves it
    ("overwrite=True"); the command line shows its own flag in its place (cli.main).
    """

    setting: str | None = None

    def __init__(self, *args: object, setting: str | None = None) -> None:
        super().__init__(*args)
        self.setting = setting


class ConfigError(GoogLeNetError, ValueError):
    """A configuration value or recipe that cannot be used."""


class DataError(GoogLeNetError, ValueError):
    """A data set that cannot be used: missing, empty, wrong layout, classes that differ."""


class BadImage(GoogLeNetError, ValueError):
    """A file that cannot be used as an image; str(error) is a short reason (callers add the
    file's name)."""


class ModelSourceError(GoogLeNetError, ValueError):
    """A model source (checkpoint, weights file, exported model, published name) that cannot be
    used as asked."""


class SchemaError(ModelSourceError):
    """Model metadata of an unknown or newer schema version, or malformed."""


class MissingExtra(GoogLeNetError, ImportError):
    """An optional dependency is not installed; the message gives the `pip install` line."""


class NotFound(GoogLeNetError, FileNotFoundError):
    """A file, folder, run or published name that does not exist (a FileNotFoundError too)."""


class StorageError(GoogLeNetError, OSError):
    """A file could not be written (a full disk, for one); what was there before is kept."""


class OutputExists(GoogLeNetError, FileExistsError):
    """A command would replace an existing file without being told to."""


class RunInUse(GoogLeNetError, RuntimeError):
    """Another process holds the run directory."""


class TrainingStopped(GoogLeNetError, RuntimeError):
    """The run cannot go on (diverged, or too many unreadable images); the message says why."""
