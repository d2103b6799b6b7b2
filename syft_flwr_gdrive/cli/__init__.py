"""The command line: ``syft-flwr-gdrive`` (typer), one module per command group; parsing, printing, exit codes."""
