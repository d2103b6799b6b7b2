"""The command line: ``syft-flwr-gdrive`` (typer), one module per command; parsing, printing, exit codes.

``app`` registers the commands; ``shared_options`` declares the options several commands take; ``exits``
maps errors to exit codes; ``live_view`` is the table ``run`` and ``demo`` show while they run.
"""
