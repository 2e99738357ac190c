"""`evalkit plugins`: every registered task kind, backend, alias, preprocessor and generator."""

from __future__ import annotations

import click

from evalkit.cli._options import CONTEXT_SETTINGS


@click.command(context_settings=CONTEXT_SETTINGS)
def plugins() -> None:
    """What is registered, by whom: evalkit's built-ins and installed outside packages.

    Entries come from entry-point groups `evalkit.executors`, `evalkit.backends`,
    `evalkit.aliases`, `evalkit.preprocessors` and `evalkit.generators` (see docs/plugins.md).
    Nothing is imported to list them.
    """
    from evalkit.backends import ALIASES, BACKENDS
    from evalkit.kinds import EXECUTORS
    from evalkit.longcontext import GENERATORS
    from evalkit.sources import PREPROCESSORS

    for registry in (EXECUTORS, BACKENDS, ALIASES, PREPROCESSORS, GENERATORS):
        rows = registry.registrations()
        click.echo(f"{registry.group} ({registry.what}):")
        width = max([len(row.name) for row in rows] + [4])
        for row in rows:
            click.echo(f"  {row.name:<{width}}  {row.origin:<24} {row.target}")
        click.echo("")
