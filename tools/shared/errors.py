"""The exception every script turns into one sentence on stderr and exit code 2."""


class BadInput(Exception):
    """A mistake in the flags, paths or data: one sentence on stderr, exit 2."""
