"""``python -m syft_flwr_gdrive.cli``: the same as the ``syft-flwr-gdrive`` command."""

from syft_flwr_gdrive.cli.app import main

main()
