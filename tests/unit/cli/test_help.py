"""Every command is documented: a help text on each command and group, and on each option.

Walks the Click command tree that Typer builds, so a command added later without a docstring
(or an option without ``help=``) fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import typer
from typer.testing import CliRunner

from mlconnector.cli import app


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))


COMMANDS = list(walk(typer.main.get_command(app)))


def test_the_expected_commands_exist() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {
        "init",
        "config check",
        "connections add",
        "connections list",
        "credentials set",
        "credentials show",
        "keys rotate",
        "ping",
    } <= names


def test_every_command_and_group_has_help_text() -> None:
    undocumented = [" ".join(path) or "(root)" for path, cmd in COMMANDS if not (cmd.help or "")]
    assert undocumented == []


def test_every_visible_parameter_has_help_text() -> None:
    missing = [
        f"{' '.join(path)} {param.name}"
        for path, cmd in COMMANDS
        for param in cmd.params
        if not getattr(param, "hidden", False) and not getattr(param, "help", None)
    ]
    assert missing == []


def test_help_runs_for_every_command() -> None:
    runner = CliRunner()
    for path, _ in COMMANDS:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def _plain(text: str) -> str:
    """Help output without the panel borders, whitespace collapsed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_help_text_is_printed_whole() -> None:
    """Rich markup eats ``[words]`` (help read "Append a  section"): every word of each
    command's help must reach the screen."""
    runner = CliRunner()
    lost = []
    for path, cmd in COMMANDS:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        shown = _plain(result.output)
        for word in (cmd.help or "").replace("\\[", "[").split():
            if word not in shown:
                lost.append(f"{' '.join(path)}: {word!r}")
    assert lost == []


def test_usage_lines_show_no_hidden_parameters_and_flags_no_type() -> None:
    runner = CliRunner()
    for path, _ in COMMANDS:
        output = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
        usage = next(line for line in output.splitlines() if "Usage" in line)
        assert "unexpected" not in usage, (path, usage)
        assert "<bool>" not in output, (path, output)
    sync = runner.invoke(app, ["sync", "orders", "--help"], env={"COLUMNS": "200"}).output
    assert "<str>" in sync  # options that take a value still show it
