"""A command module for the lazy-loading test; importing it is what the test observes."""

import click


@click.command()
def dig() -> None:
    click.echo("dug")
