"""The hub's Prometheus metrics, in a registry of its own per app instance."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from onerecord.hub.breaker import BreakerBoard
from onerecord.hub.results import RegionResult, RegionStatus

__all__ = ["HubMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 4.5, 5.0, 10.0)


class _BreakerCollector(Collector):
    """Read the breakers' states at scrape time (0 closed, 1 half-open, 2 open)."""

    def __init__(self, board: BreakerBoard) -> None:
        self.board = board

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "onerecord_hub_breaker_state",
            "Circuit breaker state per region: 0 closed, 1 half-open, 2 open.",
            labels=["hcid"],
        )
        for hcid, breaker in self.board.items():
            gauge.add_metric([hcid], breaker.state.metric_value)
        yield gauge


class HubMetrics:
    """Counters and histograms of one hub app."""

    def __init__(self, board: BreakerBoard) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "onerecord_hub_requests",
            "HTTP requests served by the hub.",
            ["route", "status"],
            registry=self.registry,
        )
        self.region_latency = Histogram(
            "onerecord_hub_region_latency_seconds",
            "Time a region took to answer a fan-out query, all pages.",
            ["hcid"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.region_outcomes = Counter(
            "onerecord_hub_region_outcomes",
            "Fan-out outcomes per region and status.",
            ["hcid", "status"],
            registry=self.registry,
        )
        self.region_timeouts = Counter(
            "onerecord_hub_region_timeouts",
            "Fan-out queries to a region that timed out.",
            ["hcid"],
            registry=self.registry,
        )
        self.registry.register(_BreakerCollector(board))
        self._outcomes: dict[tuple[str, RegionStatus], Counter] = {}
        self._latencies: dict[str, Histogram] = {}

    def observe(self, results: Sequence[RegionResult]) -> None:
        for result in results:
            hcid = result.region.hcid
            self._outcome(hcid, result.status).inc()
            if result.status is RegionStatus.TIMEOUT:
                self.region_timeouts.labels(hcid).inc()
            if result.latency_ms > 0:
                self._latency(hcid).observe(result.latency_ms / 1000)

    def _outcome(self, hcid: str, status: RegionStatus) -> Counter:
        """The counter of one region and status, looked up once (every search counts four)."""
        key = (hcid, status)
        child = self._outcomes.get(key)
        if child is None:
            child = self._outcomes[key] = self.region_outcomes.labels(hcid, status.value)
        return child

    def _latency(self, hcid: str) -> Histogram:
        child = self._latencies.get(hcid)
        if child is None:
            child = self._latencies[hcid] = self.region_latency.labels(hcid)
        return child
