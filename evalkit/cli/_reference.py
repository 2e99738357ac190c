"""The README's command reference, generated from the CLI's own `--help` (cog runs it: `make docs`).

It lives in the package rather than in the README's cog block so that cog, the drift test and a reader
all find it by import, and so that ruff and mypy check it like the commands it describes.
"""

from __future__ import annotations

import click
from click.testing import CliRunner

from evalkit.cli.main import cli

# Fixed, so the generated text does not depend on the terminal that regenerates it.
HELP_WIDTH = 88


def command_paths(group: click.Group = cli) -> list[tuple[str, ...]]:
    """Every command and subcommand below `group`, depth first in listing order: ("tasks", "list")."""
    paths: list[tuple[str, ...]] = []

    def walk(command: click.Group, prefix: tuple[str, ...]) -> None:
        with click.Context(command, info_name=prefix[-1] if prefix else "evalkit") as ctx:
            for name in command.list_commands(ctx):
                child = command.get_command(ctx, name)
                if child is None or child.hidden:
                    continue
                paths.append((*prefix, name))
                if isinstance(child, click.Group):
                    walk(child, (*prefix, name))

    walk(group, ())
    return paths


def help_text(path: tuple[str, ...]) -> str:
    """`evalkit PATH --help` as a user sees it, at a fixed width."""
    result = CliRunner().invoke(
        cli, [*path, "--help"], prog_name="evalkit", terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH
    )
    if result.exit_code != 0:
        raise RuntimeError(f"evalkit {' '.join(path)} --help failed: {result.output}")
    return result.output.rstrip() + "\n"


def command_reference() -> str:
    """Markdown: the top-level help, then one heading and help block per command, in CLI order."""
    sections = [_block("evalkit --help", help_text(()))]
    for path in command_paths():
        name = " ".join(("evalkit", *path))
        sections.append(f"### `{name}`\n\n" + _block(f"{name} --help", help_text(path)))
    return "\n".join(sections)


def _block(command: str, text: str) -> str:
    return f"```\n$ {command}\n{text}```\n"
