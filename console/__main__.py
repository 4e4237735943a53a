"""`python -m console`: the operator console on `HTTP_HOST`:`HTTP_PORT` (W4)."""

from __future__ import annotations

import sys

from console.app import serve

if __name__ == "__main__":
    sys.exit(serve())
