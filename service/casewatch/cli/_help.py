"""How every command's help looks: rich-argparse colours, defaults shown, text kept as written."""

from __future__ import annotations

import argparse
import importlib.metadata

import rich.text
from rich_argparse import RichHelpFormatter


def _sentence_case(heading: str) -> str:
    """``Columns (CSV and Parquet)``: only the first letter raised, acronyms kept."""
    return heading[:1].upper() + heading[1:]


class HelpFormatter(RichHelpFormatter):
    """Shows each option's default unless the help already says it or there is none to show.

    A description or epilog of several lines (examples, the variables table) is printed as it is
    written; a one-line text is wrapped to the terminal. Help text is plain: brackets such as
    ``[0, 1)`` are not markup.
    """

    help_markup = False
    text_markup = False
    group_name_formatter = _sentence_case

    def _rich_fill_text(
        self, text: rich.text.Text, width: int, indent: rich.text.Text
    ) -> rich.text.Text:
        if "\n" not in text.plain:
            return super()._rich_fill_text(text, width, indent)
        return rich.text.Text("\n").join(indent + line for line in text.split()) + "\n\n"

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if text is None or "default" in text or not action.option_strings:
            return text
        default = action.default
        # None, flags and empty lists have nothing worth saying: the option is simply off.
        if default is None or default is argparse.SUPPRESS or isinstance(default, bool):
            return text
        if isinstance(default, list | tuple) and not default:
            return text
        return f"{text} (default: %(default)s)"


def package_version() -> str:
    """The installed distribution's version, as ``casewatch --version`` prints it."""
    try:
        return importlib.metadata.version("casewatch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"
