"""The argument parser of the scripts that are not trainers (those use TRL's parser): a mistake in the flags is one
sentence and exit 2, not argparse's usage block."""

import argparse

from .errors import BadInput


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(f"{message}; see `{self.prog} --help`.")
