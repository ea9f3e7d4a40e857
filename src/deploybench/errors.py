"""Errors that the CLI reports as one clear line instead of a traceback."""


class UserError(Exception):
    """Bad input: the message names the problem and how to fix it."""


class CellSkipped(Exception):
    """This model cannot run in this cell for a known limitation of the backend (not a failure
    of the run); the message says which. The cell is reported as skipped, with that reason."""
