"""The two exceptions every script turns into one sentence on stderr, and the entry point that does it: BadInput (a
mistake the person fixes: exit 2) and Failure (something failed at run time: exit 1); anything else is a bug and
keeps its traceback."""

import re
import sys


class BadInput(Exception):
    """A mistake in the flags, paths or data: one sentence on stderr, exit 2. A token quoted back from the flags
    (`--hub_tokne hf_...`) is masked, since the sentence is printed and logged."""

    def __init__(self, message: str):
        super().__init__(mask_tokens(message))


class Failure(Exception):
    """Something failed at run time (network, a tool, corrupt state), with a message that says what happened and
    what to do next: one sentence on stderr, exit 1, no traceback."""

    def __init__(self, message: str):
        super().__init__(mask_tokens(message))


def mask_tokens(text: str) -> str:
    return re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", text)


def first_line(error) -> str:
    """What an exception (or a server's message) says, in one line; its class name when it says nothing."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def run_cli(main):
    """Runs a script's main: BadInput exits 2 and Failure exits 1, each with its one sentence on stderr."""
    try:
        main()
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Failure as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
