"""The flow executor's composition root: its adapters bound once (`bootstrap`), its
topics declared (`entrypoints.kafka`), its HTTP API (`http`) and its delay scheduler
(`scheduler`) as a worker."""

from __future__ import annotations

from services.flow_executor import http
from services.flow_executor.bootstrap import bootstrap
from services.flow_executor.entrypoints import kafka
from services.flow_executor.scheduler import scheduler
from shared.runtime import Runtime


def build(rt: Runtime) -> None:
    executor = bootstrap(rt.settings)
    kafka.declare(rt.kafka, executor.work)
    rt.routes += http.routes(rt, executor)
    rt.workers.append(scheduler(rt.db, executor.work, rt.settings.scheduler_interval_s))
