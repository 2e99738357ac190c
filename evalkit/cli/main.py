"""The `evalkit` command: a click group whose subcommands live in one module each.

Subcommand modules are imported only when invoked (or when help lists them), so
`evalkit --help` never imports torch, transformers or pandas.
"""

from __future__ import annotations

import importlib
import sys
import unicodedata

import click

from evalkit import __version__
from evalkit.cli._options import CONTEXT_SETTINGS
from evalkit.errors import EvalkitError

# command name -> (module, attribute, one-line help shown by `evalkit --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("evalkit.cli.run", "run", "Evaluate models on tasks and store run records."),
    "tasks": ("evalkit.cli.tasks", "tasks", "List and inspect tasks and suites."),
    "models": ("evalkit.cli.models", "models", "List built-in model aliases."),
    "leaderboard": ("evalkit.cli.leaderboard", "leaderboard", "Show a leaderboard from stored results."),
    "site": ("evalkit.cli.site", "site", "Write a static leaderboard site (offline HTML)."),
    "plot": ("evalkit.cli.plot", "plot", "Export one plot of stored results as a standalone HTML file."),
    "compare": ("evalkit.cli.compare", "compare", "Compare two models task by task with paired tests."),
    "gate": ("evalkit.cli.gate", "gate", "Check stored results against a CI gate policy (exit 0/1/2)."),
    "plugins": ("evalkit.cli.plugins", "plugins", "List registered task kinds, backends, aliases, ..."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attribute, _ = entry
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Use the static one-liners so listing commands imports nothing.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            from evalkit.errors import did_you_mean

            hint = did_you_mean(name, COMMANDS)
            ctx.fail(f"no such command {name!r}" + (f"; did you mean {hint}?" if hint else ""))
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="evalkit")
def cli() -> None:
    """Evaluate small language models on accuracy, long context and efficiency.

    \b
    Quick start:
      evalkit tasks list
      evalkit run --model smollm2-135m --suite quick
      evalkit leaderboard
    """


def main() -> None:
    try:
        # In non-standalone mode click returns ctx.exit(n)'s code instead of exiting. The program name
        # is fixed so messages read `evalkit run`, however the entry point was started.
        code = cli.main(prog_name="evalkit", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()  # a bare `evalkit` (or group) asks for help, not an error line
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {_one_line(_click_message(exc))}", err=True)
        sys.exit(2)
    except EvalkitError as exc:
        click.echo(f"error: {_one_line(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


def _click_message(exc: click.ClickException) -> str:
    """Click's message, with the command it concerns, as one line instead of usage + hint + `Error:`."""
    message = exc.format_message()
    ctx = exc.ctx if isinstance(exc, click.UsageError) else None
    if ctx is None:
        return message
    return f"{ctx.command_path}: {message} (see '{ctx.command_path} --help')"


def _one_line(text: str) -> str:
    """`text` with newlines and other control characters escaped (`\\n`, `\\x1b`).

    The error contract is one line; a name carrying a newline or an ANSI escape must neither split
    the line nor drive the terminal.
    """
    return "".join(
        repr(ch)[1:-1] if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text
    )
