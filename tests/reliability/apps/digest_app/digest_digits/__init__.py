"""Make fixtures/message_app (message_digits) and fixtures (fl_common) importable."""

import sys
from pathlib import Path

_FIXTURES = Path(__file__).resolve().parents[5] / "fixtures"
for _path in (_FIXTURES, _FIXTURES / "message_app"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))
