"""The exception every script turns into one sentence on stderr and exit code 2."""

import re


class BadInput(Exception):
    """A mistake in the flags, paths or data: one sentence on stderr, exit 2. A token quoted back from the flags
    (`--hub_tokne hf_...`) is masked, since the sentence is printed and logged."""

    def __init__(self, message: str):
        super().__init__(re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", message))


def first_line(error) -> str:
    """What an exception (or a server's message) says, in one line; its class name when it says nothing."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
