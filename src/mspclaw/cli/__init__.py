"""Command line: thin Typer commands over wiring and the REST API."""
