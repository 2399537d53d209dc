"""Errors a user can act on. Each message names the file, line, field or objective at fault."""


class PreforchError(ValueError):
    """Base class: the CLI prints these as one line, without a traceback."""


class DataError(PreforchError):
    """A data file or record is malformed (message names file:line and field)."""


class ConfigError(PreforchError):
    """A config value, YAML recipe or CLI flag is invalid."""


class WeightsError(PreforchError):
    """A preference-weight vector is not a valid point on the simplex for the given objectives."""


class ObjectiveMismatchError(PreforchError):
    """Two components (orchestrator, ensemble, weights) disagree on the objectives or their order."""
