"""Every ``mlconnector …`` command shown in README.md and docs/*.md parses with the CLI.

Examples are taken from shell blocks (``uv run mlconnector …`` / ``mlconnector …`` lines), from
table rows and from inline code (`` `mlconnector …` ``). Each is parsed by Click, without running
it: the command path must exist and its options and arguments must be accepted. In code blocks
and tables a required option left out (``reconcile`` without ``--since``) fails too; a mention
in running text (``… with `mlconnector credentials set` ``) may name a command without its
required parameters. Headings are titles, not examples. Synopses are read as their first form:
``a|b`` is ``a``, ``[--flag]`` is ``--flag``, a ``…`` value is ``1``, upper-case placeholders
get a sample value.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

# Typer carries its own copy of Click: its classes and exceptions are the ones to use here
from typer import _click as click

from mlconnector.cli import app

ROOT = Path(__file__).parents[3]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_INLINE = re.compile(r"`((?:uv run )?mlconnector [^`]+)`")
_LINE = re.compile(r"^\s*(?:\$ )?(?:[A-Z_]+=\S+ )*(?:uv run )?(mlconnector [^#]*)")
#: words that are placeholders in the docs, with a value that parses (``None``: left out)
_PLACEHOLDERS: dict[str, str | None] = {
    "NAME": "acme",
    "DATE": "2026-01-01",
    "IDS": "1",
    "ID": "1",
    "N": "1",
    "K": "key",
    "C": "acme",
    "F": "orders",
    "FLOW": "orders",
    "COMMAND": "sync",
    "options": None,
    "...": "1",
    "…": "1",
}


def examples() -> Iterator[tuple[str, int, str, bool]]:
    """``(file, line, command, strict)``; ``strict``: a code block or a table row."""
    for path in FILES:
        fence = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("```"):
                fence = not fence
                continue
            if not fence and line.startswith("#"):
                continue
            # in a code block only lines that start with the command (not output quoting one)
            found = [m.group(1) for m in _INLINE.finditer(line)] if not fence else []
            if fence and (match := _LINE.match(line)):
                found.append(match.group(1))
            strict = fence or line.lstrip().startswith("|")
            for text in found:
                yield path.relative_to(ROOT).as_posix(), number, text.strip(), strict


def _words(example: str) -> list[str]:
    text = example.replace("\\|", "|").removeprefix("uv run ").removeprefix("mlconnector")
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    out = []
    for raw in words:
        word = raw.strip("[]()").split("|")[0].rstrip(",;")
        if word not in _PLACEHOLDERS and word.rstrip(".…") in _PLACEHOLDERS:
            word = word.rstrip(".…")  # IDS… / IDS...
        if word in _PLACEHOLDERS:
            value = _PLACEHOLDERS[word]
            if value is not None:
                out.append(value)
        elif word and "…" not in word and "<" not in word:
            out.append(word)
    return out


def _parse(words: list[str]) -> None:
    """Resolve the command path and parse its parameters, as Click would before running it."""
    command = typer.main.get_command(app)
    context = command.make_context("mlconnector", [*words], resilient_parsing=False)
    while hasattr(command, "resolve_command"):  # a group
        args = [*context._protected_args, *context.args]
        if not args:
            return  # a group named on its own prints its help
        name, sub, rest = command.resolve_command(context, args)
        assert sub is not None, name
        context = sub.make_context(name or "", rest, parent=context)
        command = sub


EXAMPLES = list(examples())


def test_the_docs_have_examples() -> None:
    assert len(EXAMPLES) > 30
    assert any("sync orders --once --dry-run" in text for _, _, text, _ in EXAMPLES)


@pytest.mark.parametrize(("where", "line", "text", "strict"), EXAMPLES, ids=lambda v: str(v)[:60])
def test_example_parses(where: str, line: int, text: str, strict: bool) -> None:
    words = _words(text)
    try:
        _parse(words)
    except typer.Exit:
        pass  # --help and the like
    except (click.exceptions.MissingParameter, click.exceptions.NoArgsIsHelpError) as exc:
        if strict:
            pytest.fail(f"{where}:{line}: `{text}` does not parse: {exc.format_message()}")
    except click.ClickException as exc:
        pytest.fail(f"{where}:{line}: `{text}` does not parse: {exc.format_message()}")


def test_a_wrong_example_is_caught() -> None:
    with pytest.raises(click.ClickException):
        _parse(_words("mlconnector reconcile"))  # --since is required
    with pytest.raises(click.ClickException):
        _parse(_words("mlconnector credentials set acme webhook_token"))
