"""The suppression service's composition root: its adapters bound (`bootstrap`), its
Kafka subscribers and publishers declared (`entrypoints/kafka.py`), its HTTP API
(`http/`: a profile's suppressions; operator actions). It has no background worker."""

from __future__ import annotations

from services.suppression import http
from services.suppression.bootstrap import bootstrap
from services.suppression.entrypoints import kafka
from shared.runtime import Runtime


def build(rt: Runtime) -> None:
    """Wire the service into `rt`."""
    work = bootstrap(rt.settings)
    kafka.declare(rt.kafka, work)
    rt.routes += http.routes(rt)
