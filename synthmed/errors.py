"""Errors a user can cause. Each says, in one line, what is wrong and how to fix it.

The CLI prints ``str(error)`` and exits non-zero; no traceback is shown for these.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SynthmedError(Exception):
    """Base class for every error a user can cause (bad input, missing file, bad option)."""


class DataNotFoundError(SynthmedError):
    """A dataset file or folder is not where it was expected."""


class DataFormatError(SynthmedError):
    """A dataset file exists but its content is wrong (corrupt image, wrong keys, bad labels)."""


class SplitError(SynthmedError):
    """A split cannot be made with the requested protocol (e.g. a class has too few images)."""


class ConfigError(SynthmedError):
    """A configuration value is invalid."""


class UnknownNameError(SynthmedError):
    """A name (generator family, dataset, model, condition...) is not known."""


class NotFittedError(SynthmedError):
    """A model was used before ``fit`` or ``load``."""


class TrainingDivergedError(SynthmedError):
    """Training produced NaN/Inf losses or collapsed; the last good checkpoint is kept."""


class MissingDependencyError(SynthmedError):
    """An optional package or local weight file is needed for this feature."""


def suggest(name: str, known: Iterable[str]) -> str:
    """Return "; did you mean 'x'?" for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UnknownNameError:
    """Build the standard "no <kind> 'x'; did you mean 'y'? (known: ...)" error."""
    known = sorted(known)
    return UnknownNameError(f"no {kind} '{name}'{suggest(name, known)} (known: {', '.join(known)})")
