"""The configuration reference, generated from the Settings fields.

``python -m casewatch._config_doc`` prints the Markdown table that README.md carries between
``<!-- settings:start -->`` and ``<!-- settings:end -->``; a unit test keeps the two identical.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from casewatch._settings import Settings, env_name

START_MARKER = "<!-- settings:start -->"
END_MARKER = "<!-- settings:end -->"


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        return " | ".join(f"`{value}`" for value in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is not None and hasattr(origin, "__metadata__"):
        return _type_name(args[0])
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "properties"
    if annotation is type(None):
        return "none"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _extra(field: FieldInfo, key: str) -> str | None:
    extra = field.json_schema_extra
    if isinstance(extra, dict):
        value = extra.get(key)
        return None if value is None else str(value)
    return None


def _default(field: FieldInfo) -> str:
    documented = _extra(field, "doc_default")
    if documented is not None:
        return documented
    value = field.default
    if value is PydanticUndefined or value is None:
        return "(none)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_reference_markdown() -> str:
    """A Markdown table of every setting: environment variable, type, default, description."""
    lines = [
        "| Environment variable | Type | Default | Description |",
        "| --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        variable = _extra(field, "doc_env") or env_name(name)
        cells = (
            f"`{variable}`",
            _type_name(field.annotation),
            _default(field),
            field.description or "",
        )
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_reference_markdown(), end="")
