"""Entry point of a syft-flwr project, shaped like the one syft-flwr's bootstrap writes (test data)."""

import os
import sys
from pathlib import Path

from syft_flwr.client import create_client
from syft_flwr.config import load_flwr_pyproject
from syft_flwr.run import syftbox_run_flwr_client, syftbox_run_flwr_server

DATA_DIR = os.getenv("DATA_DIR")
OUTPUT_DIR = os.getenv("OUTPUT_DIR")

project_dir = Path(__file__).parent.absolute()
client = create_client(project_dir=project_dir)
config = load_flwr_pyproject(project_dir)["tool"]["syft_flwr"]

if client.email in config["datasites"]:
    print(f"{client.email}: data owner, running the ClientApp on {DATA_DIR}")
    syftbox_run_flwr_client(project_dir)
    sys.exit(0)
elif client.email in config["aggregator"]:
    print(f"{client.email}: aggregator, running the ServerApp (outputs in {OUTPUT_DIR})")
    syftbox_run_flwr_server(project_dir)
    sys.exit(0)
else:
    raise ValueError(f"{client.email} is neither a datasite nor the aggregator")
