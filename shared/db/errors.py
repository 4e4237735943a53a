"""Which database failures are the database's, not a message's (X2).

A batch or a mail that meets one of these is retried once the database answers again;
it is never dead-lettered or counted as a failed send. `InternalClientError` belongs here
too: asyncpg raises it from a connection the server closed in the middle of an
operation ("another operation is in progress"), which is a restart, not a bug to crash
on.
"""

from __future__ import annotations

import asyncpg

TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TransactionRollbackError,
)

# Background loops (mail worker, listener, pruning) have no message to blame: any
# database error, transient or not, waits a round and is tried again.
DB_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *TRANSIENT_DB_ERRORS)
