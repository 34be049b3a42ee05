"""The configuration reference, generated from the Settings fields.

``python -m casewatch.cli.config_doc`` prints the Markdown table that README.md carries between
``<!-- settings:start -->`` and ``<!-- settings:end -->``; a unit test keeps the two identical.
``casewatch run --help`` lists the same variables as plain text.
"""

from __future__ import annotations

import re
import textwrap
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from casewatch.settings import Settings, env_name

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


# A sentence ends at a full stop followed by a capital, so "e.g. x" and "1.5" stay whole.
_SENTENCE_END = re.compile(r"(?<=\.)\s+(?=[A-Z(`])")


def _first_sentence(text: str) -> str:
    return _SENTENCE_END.split(text.replace("\n", " "), maxsplit=1)[0].replace("`", "")


def settings_reference_text() -> str:
    """Every setting as two lines: the variable and its default, then what it does."""
    lines = ["environment variables (name, default, what it sets):"]
    for name, field in Settings.model_fields.items():
        variable = _extra(field, "doc_env") or env_name(name)
        default = _default(field).replace("`", "")
        lines.append(f"  {variable}  default: {default}")
        what = _first_sentence(field.description or "")
        indent = " " * 6
        lines.append(textwrap.fill(what, 98, initial_indent=indent, subsequent_indent=indent))
    return "\n".join(lines)


_ENV_EXAMPLE_HEADER = """\
# casewatch settings: every variable with its default. Uncomment to change one.
# Load with `docker run --env-file`, `env_file:` in compose, or a Kubernetes ConfigMap/Secret.
# Keep credentials (CASEWATCH_KAFKA__SASL_PASSWORD, ...) in a secret store, not in this file.
"""

_ENV_EXAMPLE_FOOTER = """\
# Any librdkafka property: CASEWATCH_KAFKA__<PROPERTY>, lower-cased with '_' read as '.'.
# Given to every client that understands it, after casewatch's own defaults.
# CASEWATCH_KAFKA__SECURITY_PROTOCOL=SASL_SSL
# CASEWATCH_KAFKA__SASL_MECHANISM=SCRAM-SHA-512
# CASEWATCH_KAFKA__SASL_USERNAME=casewatch
# CASEWATCH_KAFKA__SASL_PASSWORD=change-me
# CASEWATCH_KAFKA__SSL_CA_LOCATION=/etc/ssl/certs/ca.pem

# Any Schema Registry client property: CASEWATCH_SCHEMA_REGISTRY__<PROPERTY>, spelt the same way.
# CASEWATCH_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO=casewatch:change-me
# CASEWATCH_SCHEMA_REGISTRY__SSL_CA_LOCATION=/etc/ssl/certs/ca.pem
"""


def _choices(annotation: Any) -> str:
    """`` One of: a, b.`` for a field with a fixed set of values, so each spelling is shown."""
    if get_origin(annotation) is not Literal:
        return ""
    return " One of: " + ", ".join(str(value) for value in get_args(annotation)) + "."


def env_example() -> str:
    """``config/casewatch.env.example``: every setting, commented out, with its default."""
    blocks = [_ENV_EXAMPLE_HEADER]
    for name, field in Settings.model_fields.items():
        if name in ("kafka", "schema_registry"):  # properties, shown in the footer
            continue
        default = field.default
        if default is PydanticUndefined or default is None:
            shown = ""
        elif isinstance(default, bool):
            shown = str(default).lower()
        elif isinstance(default, list):
            shown = ",".join(str(v) for v in default)
        else:
            shown = str(default)
        text = textwrap.fill(
            f"{field.description}{_choices(field.annotation)}".replace("`", ""), 98,
            initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False,
        )  # fmt: skip
        if name == "model_path":
            text += "\n# The container image sets it to the copy baked in at /app/models."
            shown = "/app/models/reference.onnx"
        blocks.append(f"{text}\n# {env_name(name)}={shown}\n")
    blocks.append(_ENV_EXAMPLE_FOOTER)
    return "\n".join(blocks)


if __name__ == "__main__":
    import sys

    print(env_example() if "--env-example" in sys.argv else settings_reference_markdown(), end="")
