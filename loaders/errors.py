"""Exceptions loaders raise: the CLI turns any LoadError into one line and exit status 2."""


class LoadError(ValueError):
    """Bad input from a file or the command line; the message must let the user act on it."""


class IgvmError(LoadError):
    """An IGVM file breaks a rule of the format (the message names header index, file offset, rule)."""
