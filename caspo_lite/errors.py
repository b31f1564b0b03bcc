"""Errors the library raises for user mistakes and missing resources.

The library raises these; only `caspo_lite.cli` turns them into one line and a non-zero exit.
Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class CaspoError(Exception):
    """A problem the user can fix; the message says what and how, in one line."""

    exit_code = 1


class ConfigError(CaspoError):
    """A recipe/config key or value is wrong (the message names the file and key)."""

    exit_code = 2


class DataError(CaspoError):
    """A data file is missing, empty, not UTF-8, or a row lacks a field (names file and line)."""

    exit_code = 2


class ModelError(CaspoError):
    """A model reference cannot be resolved or loaded (missing file, truncated GGUF, offline hub id)."""


class BackendUnavailable(CaspoError):
    """An optional dependency or device is absent; the message names the extra to install."""


class EngineError(CaspoError):
    """The inference engine failed at run time (e.g. context overflow)."""


class ExportError(CaspoError):
    """A model cannot be exported to GGUF (unsupported architecture, bad source)."""


class TrainingFailed(CaspoError):
    """A training stage's process crashed or was killed; a rerun resumes from its checkpoints."""
