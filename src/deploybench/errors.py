"""Errors that the CLI reports as one clear line instead of a traceback."""


class UserError(Exception):
    """Bad input: the message names the problem and how to fix it."""
