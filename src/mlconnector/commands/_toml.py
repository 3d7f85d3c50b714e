"""Append a ``[connections.NAME]`` section to ``mlconnector.toml`` without rewriting the file.

The standard library reads TOML but does not write it; the sections written here only hold
strings, numbers, booleans, lists of those and nested tables, so a small emitter suffices and
keeps the operator's comments and layout untouched (the new text is appended).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlconnector.errors import ConfigError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(key: str) -> str:
    """A bare key when allowed, else a quoted one."""
    return key if _BARE_KEY.match(key) else json.dumps(key)


def toml_value(value: Any) -> str:
    """One TOML value (JSON string escapes are valid TOML basic-string escapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def render_tables(prefix: tuple[str, ...], table: Mapping[str, Any]) -> str:
    """``table`` as a ``[prefix]`` section followed by its sub-tables, in order."""
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    subtables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    lines = [f"[{'.'.join(toml_key(part) for part in prefix)}]"] if scalars or not subtables else []
    lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in scalars.items()]
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, sub in subtables.items():
        text += ("\n" if text else "") + render_tables((*prefix, key), sub)
    return text


def append_connection(
    path: Path, name: str, section: Mapping[str, Any], validate: Callable[[str], object]
) -> str:
    """Append ``[connections.<name>]`` built from ``section``; return the text appended.

    Refuses a name the file already has. ``validate`` receives the whole new text and raises
    (``ConfigError``) if it is not a valid configuration; only then is the file replaced, via a
    temporary file and a rename, so neither a bad section nor a crash leaves a broken file.
    """
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        existing = tomllib.loads(current).get("connections", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    if name in existing:
        raise ConfigError(
            f"{path}: connections.{name} already exists",
            hint="edit that section of the file, or choose another name",
        )
    addition = render_tables(("connections", name), section)
    if not current or current.endswith("\n\n"):
        separator = ""
    else:
        separator = "\n" if current.endswith("\n") else "\n\n"
    text = current + separator + addition
    validate(text)
    write_atomically(path, text)
    return addition


def write_atomically(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
