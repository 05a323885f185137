"""What the server tells operators: Prometheus metrics under TF Serving's names, and an access log.

Every request that names a model is counted once it is answered, from the REST and the gRPC front
end alike, the way TF Serving counts them (util.cc, http_server.cc, prediction_service_impl.cc):

    :tensorflow:serving:request_count{model_name, status}          every answered request
    :tensorflow:serving:request_latency{model_name, API, entrypoint}  successful requests, microseconds
    :tensorflow:serving:runtime_latency{model_name, API, runtime}  time inside the model, microseconds

Latency histograms use TF Serving's buckets (10 us x 1.8^i, 33 of them, about 20 minutes). The text is
written by `prometheus_client` from a collector of its own registry, so sample names are exactly
TF Serving's (a dashboard built on the real server works here too). The access log, off unless
`--access_log_file` names a file, gets one line per request.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # PrometheusExporter::kPrometheusPath
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = [10 * 1.8**i for i in range(33)]
PREFIX = ":tensorflow:serving:"


class _Histogram:
    """Counts per bucket and a sum, for one label set."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, micros: float) -> None:
        index = next((i for i, limit in enumerate(BUCKETS) if micros <= limit), len(BUCKETS))
        self.counts[index] += 1
        self.total += micros

    def buckets(self) -> list[tuple[str, int]]:
        cumulative, rows = 0, []
        for limit, count in zip([*(f"{b:g}" for b in BUCKETS), "+Inf"], self.counts, strict=True):
            cumulative += count
            rows.append((limit, cumulative))
        return rows


class RequestObserver:
    """Counts, times and (optionally) logs each answered request; thread-safe, cheap on the hot path."""

    def __init__(self, access_log: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = defaultdict(int)
        self._request_latency: dict[tuple[str, str, str], _Histogram] = defaultdict(_Histogram)
        self._runtime_latency: dict[tuple[str, str, str], _Histogram] = defaultdict(_Histogram)
        self._log = open(access_log, "a", buffering=1) if access_log else None  # noqa: SIM115 (kept open)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def request(self, model: str, api: str, entrypoint: str, status: str, seconds: float, detail: str = "") -> None:
        """One answered request: `status` is a gRPC status name ('OK', 'INVALID_ARGUMENT' ...)."""
        micros = seconds * 1e6
        with self._lock:
            self._requests[(model, status)] += 1
            if status == "OK":
                self._request_latency[(model, api, entrypoint)].observe(micros)
        if self._log is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            self._log.write(
                f"{stamp} {entrypoint} {api} model={model or '-'} {status} {seconds * 1000:.2f}ms {detail}\n"
            )

    def runtime(self, model: str, api: str, seconds: float) -> None:
        """Time spent running the model itself (no decoding, queueing or encoding)."""
        with self._lock:
            self._runtime_latency[(model, api, "TF")].observe(seconds * 1e6)

    def collect(self):
        """prometheus_client's collector protocol: TF Serving's metric families."""
        with self._lock:
            requests = dict(self._requests)
            latencies = [
                ("request_latency", "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
                 ["model_name", "API", "entrypoint"], dict(self._request_latency)),
                ("runtime_latency", "Distribution of wall time (in microseconds) for Tensorflow runtime.",
                 ["model_name", "API", "runtime"], dict(self._runtime_latency)),
            ]  # fmt: skip
            snapshots = [
                (name, doc, labels, {key: (h.buckets(), h.total) for key, h in series.items()})
                for name, doc, labels, series in latencies
            ]
        counter = Metric(PREFIX + "request_count", "The total number of requests.", "counter")
        for (model, status), count in sorted(requests.items()):
            counter.add_sample(PREFIX + "request_count", {"model_name": model, "status": status}, count)
        yield counter
        for name, doc, labels, series in snapshots:
            family = HistogramMetricFamily(PREFIX + name, doc, labels=labels)
            for key, (buckets, total) in sorted(series.items()):
                family.add_metric(list(key), buckets, total)
            yield family

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
