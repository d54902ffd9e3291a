"""One error type for input a user can fix: the CLI prints its message on one line, no traceback."""


class UserError(Exception):
    """Bad input (a missing path, a malformed file, an unknown name). The message says which and what
    was expected; ``python -m paper_repro`` prints it alone and exits with status 2."""
