"""The ``casewatch`` command line: one subcommand per module of this package."""

from casewatch.cli.main import main

__all__ = ["main"]
