"""The operator commands, one module per command group; ``mlconnector.cli`` assembles them.

Each command is a thin layer over library calls (config, store, clients): it parses options,
calls the library, and prints with Rich. Everything a command touches from the outside world
(environment, stdin, consoles, HTTP transport, clock) comes from :class:`CliContext`, so tests
run every command in-process with ``typer.testing.CliRunner(...).invoke(app, obj=context)``.
"""
