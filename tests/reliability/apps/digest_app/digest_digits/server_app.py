"""fixtures/message_app's ServerApp main, then a bit-exact digest of the final model.

``context.state["model_digest"]`` is a ConfigRecord with ``sha256`` (over dtype, shape and
bytes of every array of ``context.state["model"]``) and ``hex`` (the arrays' bytes in hex),
so the CLI's ``--report`` carries the final weights bit for bit.
"""

from __future__ import annotations

import hashlib

import numpy as np
from fl_common.task import MODEL_RECORD
from flwr.app import ConfigRecord
from flwr.app import Context
from flwr.serverapp import Grid
from flwr.serverapp import ServerApp
from message_digits.server_app import main as digits_main

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    digits_main(grid, context)
    arrays = context.state[MODEL_RECORD].to_numpy_ndarrays()
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    context.state["model_digest"] = ConfigRecord(
        {
            "sha256": digest.hexdigest(),
            "arrays": len(arrays),
            "hex": [np.ascontiguousarray(a).tobytes().hex() for a in arrays],
        }
    )
