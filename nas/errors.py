"""One exception tree for nas; each error also inherits the matching built-in."""

from __future__ import annotations

__all__ = [
    "NASError",
    "SpecError",
    "DataError",
    "DatasetNotFoundError",
    "ConfigError",
    "CheckpointError",
    "LatencyTableError",
    "MissingLatencyKeyError",
    "first_line",
]


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of ``error``'s message (at most ``limit`` characters), or its type's name
    when it has none: what a one-line message quotes of a library's error."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__


def unreadable(error: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, in one line, without torch's
    advice to load it with ``weights_only=False`` (which would run whatever code it holds)."""
    text = str(error)
    if "Weights only load failed" in text:
        detail = [line.strip() for line in text.split("WeightsUnpickler error:")[-1].splitlines()]
        why = next((line for line in detail if line), "")
        return "not a file of plain tensors (corrupt, or holding pickled objects)" + (
            f": {why}" if why else ""
        )
    return first_line(error, limit=300)


class NASError(Exception):
    """Root of every error raised on purpose by nas."""


class SpecError(NASError, ValueError):
    """A run spec (YAML) has a missing, unknown or invalid field; the message names it."""


class DataError(NASError, ValueError):
    """A dataset file or folder is malformed; the message names the file."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A dataset file or folder does not exist."""


class ConfigError(NASError, ValueError):
    """An architecture config is not part of its search space; the message names the field."""


class CheckpointError(NASError, ValueError):
    """A checkpoint is missing or does not fit the search space it is loaded into."""


class LatencyTableError(NASError, ValueError):
    """A latency lookup table is malformed."""


class FewShotError(NASError, ValueError):
    """An argument of a few-shot latency fit is malformed; the message names the argument."""


class MissingLatencyKeyError(LatencyTableError, KeyError):
    """A layer key is not in a latency table; never priced as zero."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
