"""Prometheus metrics at ``GET /metrics`` on the serving port (one port for probes and scrapes, as
KServe serves them), in the Prometheus text format written by prometheus-client.

Names follow KServe's Python model server: ``request_predict_seconds``, a histogram labelled
``model_name``, without a prefix; the rest in the same style, with Prometheus' base units and
``_total`` counters (docs/serving.md, "Metrics", lists them):

    requests_total{model_name, endpoint, status}   every response: the route template (never the
                                                   raw path), ``other`` for a path no route matches;
                                                   model_name a served model's name, else empty
    request_predict_seconds{model_name}            seconds in the app of a request that predicted
                                                   (2xx from infer or /invocations): read, decode,
                                                   predict, encode (KServe splits pre/post-processing
                                                   into their own histograms; ours are inline)
    request_predict_rows_total{model_name}         rows predicted
    requests_in_flight                             requests received and not yet answered
    process_*                                      prometheus-client's process collector

Several workers (WEB_CONCURRENCY > 1): prometheus-client's multiprocess mode. Each worker writes
its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape, whichever worker answers it,
sums them. prometheus-client reads that variable once, when it is imported, so the supervisor sets
it (``multiprocess_directory``) before it starts the workers, which import everything afresh
(uvicorn spawns them). A worker's metrics are made when its app starts, after the supervisor has
cleared the directory of a previous run's files.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from uvicorn.supervisors import Multiprocess

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable
OTHER_ENDPOINT = "other"  # the endpoint label of a path no route matches: one value, whatever the path
INVOCATIONS = "/invocations"  # SageMaker's fixed path: its model is the app's invocations model
# One row takes ~0.5 ms end to end, 1,000 rows a few ms, a body at the 8 MiB limit (~80,000 rows)
# a few hundred ms: buckets from 0.25 ms to 2.5 s.
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Instruments:
    """The metrics of this process, and the registry a scrape reads (in multiprocess mode: every
    worker's files, summed)."""

    def __init__(self) -> None:
        self.directory = os.environ.get(MULTIPROC_DIR_ENV) or None
        disable_created_metrics()  # no *_created series: multiprocess mode has none, so neither has one process
        # In multiprocess mode the values live in files: the scrape reads them, not these objects.
        own = None if self.directory else CollectorRegistry()
        self.requests = Counter(
            "requests",
            "HTTP requests answered, by model, endpoint (the route template) and status code",
            ["model_name", "endpoint", "status"],
            registry=own,
        )
        self.predict_seconds = Histogram(
            "request_predict_seconds",
            "Seconds in the server of a request that predicted (read, decode, predict, encode)",
            ["model_name"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.rows = Counter("request_predict_rows", "Rows predicted", ["model_name"], registry=own)
        # livesum: the sum over live workers; the supervisor removes a dead worker's file
        self.in_flight = Gauge(
            "requests_in_flight", "Requests received and not yet answered", multiprocess_mode="livesum", registry=own
        )
        # Requests in flight in this process: an int, which one process' gauge reads at scrape time
        # (an int's += costs a fraction of a gauge's inc); in multiprocess mode written to its file
        # at each change.
        self.active = 0
        if self.directory:
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, path=self.directory)
            self.registry.register(WorkerProcessCollector(self.directory))
        else:
            self.in_flight.set_function(lambda: self.active)
            self.registry = own
            ProcessCollector(registry=own)
        self.rows_of = {}  # model name -> its bound counter: .labels() once per model, not per request

    def enter(self) -> None:
        self.active += 1
        if self.directory:
            self.in_flight.set(self.active)

    def leave(self) -> None:
        self.active -= 1
        if self.directory:
            self.in_flight.set(self.active)


@functools.cache
def instruments() -> Instruments:
    """This process' metrics, made on first use: when the app starts (in a worker, after the
    supervisor has prepared the multiprocess directory)."""
    return Instruments()


def count_rows(model_name: str, rows: int) -> None:
    """Count ``rows`` predicted by ``model_name`` (called by the app where it predicts)."""
    rows_of = instruments().rows_of
    counter = rows_of.get(model_name)
    if counter is None:
        counter = rows_of[model_name] = instruments().rows.labels(model_name)
    counter.inc(rows)


async def scrape(request: Request) -> Response:
    """``GET /metrics``: every metric, in the Prometheus text format."""
    return Response(generate_latest(instruments().registry), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Pure ASGI middleware (no BaseHTTPMiddleware: no task, no body copy): counts every response
    and times the ones that predicted. All is recorded just before the response's last body chunk
    is sent, so a client that has its response can read it back from ``/metrics``. Labels are
    bound once per (endpoint, model, status) and cached: a request costs a few microseconds."""

    def __init__(self, app) -> None:
        self.app = app
        self.instruments = instruments()
        self.bound: dict[tuple[str, str, int], tuple] = {}
        self.models: frozenset[str] | None = None  # the served models' names, read from the app's state once

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        instruments = self.instruments
        instruments.enter()
        status, recorded = 500, False

        async def send_recording(message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = message["status"]
            elif not (recorded or message.get("more_body", False)):
                recorded = True
                self.record(scope, status, perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            if not recorded:  # an exception (Starlette's outermost handler answers 500), or no response
                self.record(scope, 500, perf_counter() - started)

    def record(self, scope, status: int, seconds: float) -> None:
        self.instruments.leave()
        route = scope.get("route")
        name = scope["path_params"].get("model") if route is not None else None
        if name is not None and name not in (self.models or self.read_models(scope)):
            name = ""  # a name the client made up: never a label
        key = (route.path if route is not None else OTHER_ENDPOINT, name, status)
        bound = self.bound.get(key)
        if bound is None:
            bound = self.bound[key] = self.bind(scope, *key)
        bound[0].inc()
        if bound[1] is not None:
            bound[1].observe(seconds)

    def read_models(self, scope) -> frozenset[str]:
        self.models = frozenset(scope["app"].state.models)
        return self.models

    def bind(self, scope, endpoint: str, model_name: str | None, status: int) -> tuple:
        """The request counter of these labels, and the latency histogram if such a request predicted."""
        if endpoint == INVOCATIONS:
            model_name = scope["app"].state.invocations_model
        model_name = model_name or ""
        predicted = bool(model_name) and 200 <= status < 300 and (endpoint.endswith("/infer") or endpoint == INVOCATIONS)
        return (
            self.instruments.requests.labels(model_name, endpoint, str(status)),
            self.instruments.predict_seconds.labels(model_name) if predicted else None,
        )


# ---------------------------------------------------------------------------------------------
# Several workers: the directory, the dead workers, their process metrics
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def multiprocess_directory(workers: int) -> Iterator[None]:
    """Prepare prometheus-client's multiprocess directory for the workers about to start:
    ``$PROMETHEUS_MULTIPROC_DIR`` if the operator set one, else, with several workers, a fresh one
    under the temporary directory (an emptyDir in a read-only pod), removed at the end. A previous
    run's files are deleted first: they would add its counts to ours."""
    if os.environ.get(MULTIPROC_DIR_ENV):
        directory = Path(os.environ[MULTIPROC_DIR_ENV])
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield
    elif workers > 1:
        directory = tempfile.mkdtemp(prefix="prometheus-")
        os.environ[MULTIPROC_DIR_ENV] = directory  # inherited by the workers, which import prometheus-client
        try:
            yield
        finally:
            del os.environ[MULTIPROC_DIR_ENV]
            shutil.rmtree(directory, ignore_errors=True)
    else:
        yield  # one process: its metrics in memory


class Supervisor(Multiprocess):
    """uvicorn's supervisor, telling prometheus-client when a worker has gone (crashed and
    replaced, or retired by SIGHUP or SIGTTOU): ``mark_process_dead`` removes its in-flight gauge
    from the sum. Its counters stay: what it served was served."""

    known_pids: frozenset[int] = frozenset()

    def keep_subprocess_alive(self) -> None:
        # the workers before this call too: one may die before any earlier call has returned (the
        # first waits for every worker's health check), and be replaced in this one
        seen = self.known_pids | {process.pid for process in self.processes}
        super().keep_subprocess_alive()  # every 0.5 s, after the signals were handled
        live = frozenset(process.pid for process in self.processes)
        for pid in seen - live:
            mark_process_dead(pid, os.environ[MULTIPROC_DIR_ENV])
        self.known_pids = live


class WorkerProcessCollector:
    """prometheus-client's process metrics (CPU, memory, open files, start time) of every live
    worker, labelled ``pid``: its ProcessCollector reads one process, and the multiprocess collector
    none. The live workers are those whose in-flight gauge file exists (made when a worker starts,
    removed by mark_process_dead)."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for gauge_file in sorted(self.directory.glob("gauge_livesum_*.db")):
            pid = gauge_file.stem.rsplit("_", 1)[1]
            for family in ProcessCollector(pid=lambda pid=pid: pid, registry=None).collect():
                into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                into.samples += [sample._replace(labels={**sample.labels, "pid": pid}) for sample in family.samples]
        yield from merged.values()
