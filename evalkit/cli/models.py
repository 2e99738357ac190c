"""`evalkit models list`: the built-in model aliases and what they resolve to."""

from __future__ import annotations

import click

from evalkit.cli._options import CONTEXT_SETTINGS


@click.group(context_settings=CONTEXT_SETTINGS)
def models() -> None:
    """List built-in model aliases and the model spec syntax."""


@models.command("list", context_settings=CONTEXT_SETTINGS)
def list_models() -> None:
    """Each alias, what it is, and where its weights come from (or how to install them)."""
    from evalkit.backends import list_aliases
    from evalkit.errors import EvalkitError

    for alias in list_aliases():
        try:
            target = alias.where() or "(built in)"  # where(): listing never assembles nor downloads
            status = f"{alias.backend}:{target}"
        except EvalkitError as exc:
            status = f"not installed: {exc}"
        click.echo(f"{alias.name:<16} {alias.description}")
        click.echo(f"{'':<16} -> {status}")
    click.echo("")
    click.echo("Other specs: hf:HUB_ID_OR_DIR, gguf:FILE.gguf, fake; options after commas,")
    click.echo("e.g. smollm2-135m,dtype=bfloat16  hf:./my-model,revision=main,chat_template=true")
