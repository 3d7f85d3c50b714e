"""How the program was started, so that every hint it prints can be copied and run as printed.

``uv run mlconnector sync …`` leaves ``UV_RUN_RECURSION_DEPTH`` in the environment of the
console script; ``python -m mlconnector.cli`` has the module's path as ``argv[0]``. Every
``next:`` line, hint and the demo's "look closer" line goes through :func:`as_invoked`, which
rewrites the commands the library names in backticks (`` `mlconnector …` ``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import PurePath

PROGRAM = "mlconnector"

#: a command named in a message: `` `mlconnector …` `` (the library writes them so)
_NAMED_COMMAND = re.compile(r"`mlconnector(?=[ `])")


def invoked_as(env: Mapping[str, str], argv: Sequence[str]) -> str:
    """The command prefix the user typed: ``uv run mlconnector``, ``python -m mlconnector.cli``
    or ``mlconnector``."""
    first = PurePath(argv[0]).name if argv else ""
    if first in {"cli.py", "__main__.py"}:
        prefix = "python -m mlconnector.cli"
    elif first == PROGRAM:
        prefix = PROGRAM
    else:
        # embedded (tests, another program): the installed script's name
        return PROGRAM
    return f"uv run {prefix}" if env.get("UV_RUN_RECURSION_DEPTH") else prefix


def as_invoked(text: str, program: str) -> str:
    """``text`` with every `` `mlconnector …` `` command written the way the program was started."""
    if program == PROGRAM:
        return text
    return _NAMED_COMMAND.sub(lambda _m: f"`{program}", text)
