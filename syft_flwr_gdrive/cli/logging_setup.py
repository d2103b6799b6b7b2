"""Logging of the participant commands (``server``, ``client``): one format, on stderr, each line once."""

from __future__ import annotations

import logging
import sys


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("googleapiclient.discovery_cache", "googleapiclient.discovery", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Flower's logger has a console handler of its own and also propagates to ours: without this every
    # Flower line is printed twice. Ours stays, so all lines share one format with timestamps.
    from flwr.supercore.logger import FLOWER_LOGGER
    from flwr.supercore.logger import ConsoleHandler

    for handler in list(FLOWER_LOGGER.handlers):
        if isinstance(handler, ConsoleHandler):
            FLOWER_LOGGER.removeHandler(handler)
