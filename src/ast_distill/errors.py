"""The one error type users see: a single line saying what, where and what to do (exit code 2)."""


class UserError(Exception):
    """Bad input from the user (a flag, a config key, a file). Printed as one line; exit code 2."""
