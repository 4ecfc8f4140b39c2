"""Errors meant for the user: the CLI prints their message on one line, with no traceback."""


class T1Error(Exception):
    exit_code = 1


class ConfigError(T1Error, ValueError):
    """A bad config file, key, value or combination of values."""

    exit_code = 2


class DataError(T1Error, ValueError):
    """Bad input data; the message names the file and line."""

    exit_code = 2
