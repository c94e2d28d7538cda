"""Prometheus metrics with etcd's names, for what pyetcd has.

Nothing on the request path touches prometheus_client: the server keeps
plain integers and :class:`Histogram` objects (a bisect and three additions
per observation, taken once per Ready or per backend commit, never per
request), and :class:`EtcdCollector` turns them into metric families only
when ``/metrics`` is scraped.  gRPC calls are counted per (service, method,
code) in a dict by the api layer's wrapper.

What is exported (etcd 3.5's names and types):

- etcd_server_has_leader, etcd_server_is_leader, etcd_server_is_learner,
  etcd_server_leader_changes_seen_total, etcd_server_id{server_id},
  etcd_server_version{server_version}, etcd_cluster_version{cluster_version},
  etcd_server_quota_backend_bytes
- etcd_server_proposals_committed_total / _applied_total (gauges, as in
  etcd), etcd_server_proposals_pending, etcd_server_proposals_failed_total
- etcd_server_slow_apply_total, etcd_server_health_success /
  etcd_server_health_failures
- etcd_disk_wal_fsync_duration_seconds, etcd_disk_backend_commit_duration_seconds
  (histograms, buckets 1 ms .. 8 s as etcd's)
- etcd_mvcc_db_total_size_in_bytes, etcd_mvcc_db_total_size_in_use_in_bytes,
  etcd_debugging_mvcc_current_revision, etcd_debugging_mvcc_compact_revision
- etcd_network_active_peers{Local,Remote}, etcd_network_peer_round_trip_time_seconds{To}
  (the stream handshake's round trip, taken at every (re)connect)
- grpc_server_started_total, grpc_server_handled_total
- process_* and python_* from prometheus_client's own collectors
"""
from __future__ import annotations

from bisect import bisect_left

from pyetcd.version import API_VERSION, ETCD_VERSION


def exponential_buckets(start: float, factor: float, count: int) -> list[float]:
    out, v = [], start
    for _ in range(count):
        out.append(v)
        v *= factor
    return out


DISK_BUCKETS = exponential_buckets(0.001, 2, 14)     # etcd: 1 ms .. 8.192 s
RTT_BUCKETS = exponential_buckets(0.0001, 2, 16)     # etcd: 0.1 ms .. 3.2768 s


class Histogram:
    """Cumulative-on-export histogram of plain counters."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: list[float]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect_left(self.bounds, v)] += 1
        self.sum += v
        self.count += 1

    def buckets(self) -> list[tuple[str, int]]:
        out, acc = [], 0
        for b, c in zip(self.bounds, self.counts):
            acc += c
            out.append((_fmt(b), acc))
        out.append(("+Inf", acc + self.counts[-1]))
        return out


def _fmt(b: float) -> str:
    return repr(float(b))


class ServerMetrics:
    """The counters one member keeps."""

    def __init__(self):
        self.leader_changes = 0
        self.proposals_failed = 0
        self.slow_applies = 0
        self.health_success = 0
        self.health_failures = 0
        self.wal_fsync = Histogram(DISK_BUCKETS)
        self.backend_commit = Histogram(DISK_BUCKETS)
        self.peer_rtt: dict[int, Histogram] = {}
        # (grpc_type, service, method) -> started; (grpc_type, service, method, code) -> handled
        self.grpc_started: dict[tuple[str, str, str], int] = {}
        self.grpc_handled: dict[tuple[str, str, str, str], int] = {}

    def observe_peer_rtt(self, member_id: int, seconds: float) -> None:
        h = self.peer_rtt.get(member_id)
        if h is None:
            h = self.peer_rtt[member_id] = Histogram(RTT_BUCKETS)
        h.observe(seconds)


def _gauge(name, doc, value, labels=None):
    from prometheus_client.core import GaugeMetricFamily
    if labels:
        g = GaugeMetricFamily(name, doc, labels=list(labels))
        g.add_metric(list(labels.values()), value)
        return g
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name, doc, value):
    from prometheus_client.core import CounterMetricFamily
    return CounterMetricFamily(name, doc, value=value)


def _untyped(name, doc, value):
    """etcd's own names have no _total (a Go counter keeps its name as
    given); prometheus_client would append one to a counter: untyped."""
    from prometheus_client.core import Metric
    f = Metric(name, doc, "unknown")
    f.add_sample(name, {}, value)
    return f


def _hist(name, doc, h: Histogram):
    from prometheus_client.core import HistogramMetricFamily
    f = HistogramMetricFamily(name, doc, labels=[])
    f.add_metric([], h.buckets(), h.sum)
    return f


class EtcdCollector:
    """A prometheus_client collector reading a live EtcdServer at scrape time."""

    def __init__(self, server):
        self.server = server

    def describe(self):
        return []

    def collect(self):
        yield from self._server()
        yield from self._proposals()
        yield from self._storage()
        yield from self._network()
        yield from self._grpc()

    def _server(self):
        s = self.server
        raft = s.raft
        yield _gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 "
                     "is not.", 1 if s.leader_id else 0)
        yield _gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 "
                     "otherwise.", 1 if raft is not None and raft.is_leader else 0)
        yield _gauge("etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, "
                     "0 otherwise.", 1 if s.is_learner() else 0)
        yield _counter("etcd_server_leader_changes_seen_total", "The number of leader changes seen.",
                       s.metrics.leader_changes)
        yield _gauge("etcd_server_id", "Server or member ID in hexadecimal format. 1 for "
                     "'server_id' label with current ID.", 1, {"server_id": f"{s.member_id:x}"})
        yield _gauge("etcd_server_version", "Which version is running. 1 for 'server_version' "
                     "label with current version.", 1, {"server_version": ETCD_VERSION})
        yield _gauge("etcd_cluster_version", "Which version is running. 1 for 'cluster_version' "
                     "label with current cluster version", 1, {"cluster_version": API_VERSION})
        yield _gauge("etcd_server_quota_backend_bytes", "Current backend storage quota size in "
                     "bytes.", s.cfg.quota_bytes)
        yield _untyped("etcd_server_health_success", "The total number of successful health "
                       "checks", s.metrics.health_success)
        yield _untyped("etcd_server_health_failures", "The total number of failed health checks",
                       s.metrics.health_failures)

    def _proposals(self):
        s = self.server
        m = s.metrics
        yield _gauge("etcd_server_proposals_committed_total",
                     "The total number of consensus proposals committed.",
                     s.committed_index if s.raft is not None else 0)
        yield _gauge("etcd_server_proposals_applied_total",
                     "The total number of consensus proposals applied.", s.applied_index)
        yield _gauge("etcd_server_proposals_pending",
                     "The current number of pending proposals to commit.", s.pending_proposals)
        yield _counter("etcd_server_proposals_failed_total",
                       "The total number of failed proposals seen.", m.proposals_failed)
        yield _counter("etcd_server_slow_apply_total", "The total number of slow apply requests "
                       "(likely overloaded from slow disk).", m.slow_applies)

    def _storage(self):
        s = self.server
        m = s.metrics
        yield _hist("etcd_disk_wal_fsync_duration_seconds",
                    "The latency distributions of fsync called by WAL.", m.wal_fsync)
        yield _hist("etcd_disk_backend_commit_duration_seconds",
                    "The latency distributions of commit called by backend.", m.backend_commit)
        yield _gauge("etcd_mvcc_db_total_size_in_bytes",
                     "Total size of the underlying database physically allocated in bytes.",
                     s.backend.size())
        yield _gauge("etcd_mvcc_db_total_size_in_use_in_bytes",
                     "Total size of the underlying database logically in use in bytes.",
                     s.backend.size_in_use())
        yield _gauge("etcd_debugging_mvcc_current_revision",
                     "The current revision of store.", s.kv.current_rev)
        yield _gauge("etcd_debugging_mvcc_compact_revision",
                     "The revision of the last compaction in store.", max(0, s.kv.compact_main_rev))

    def _network(self):
        from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
        s = self.server
        t = s.transport
        active = GaugeMetricFamily("etcd_network_active_peers",
                                   "The current number of active peer connections.",
                                   labels=["Local", "Remote"])
        if t is not None:
            for mid in sorted(s.cluster.members):
                if mid != s.member_id and t.is_active(mid):
                    active.add_metric([f"{s.member_id:x}", f"{mid:x}"], 1)
        yield active
        rtt = HistogramMetricFamily("etcd_network_peer_round_trip_time_seconds",
                                    "Round-Trip-Time histogram between peers", labels=["To"])
        for mid, h in sorted(s.metrics.peer_rtt.items()):
            rtt.add_metric([f"{mid:x}"], h.buckets(), h.sum)
        yield rtt

    def _grpc(self):
        from prometheus_client.core import CounterMetricFamily
        m = self.server.metrics
        started = CounterMetricFamily("grpc_server_started",
                                      "Total number of RPCs started on the server.",
                                      labels=["grpc_method", "grpc_service", "grpc_type"])
        for (typ, svc, meth), n in sorted(m.grpc_started.items()):
            started.add_metric([meth, svc, typ], n)
        yield started
        handled = CounterMetricFamily("grpc_server_handled", "Total number of RPCs completed on the "
                                      "server, regardless of success or failure.",
                                      labels=["grpc_code", "grpc_method", "grpc_service", "grpc_type"])
        for (typ, svc, meth, code), n in sorted(m.grpc_handled.items()):
            handled.add_metric([code, meth, svc, typ], n)
        yield handled


def registry_for(server):
    """A registry with the member's metrics and the process/platform/gc ones."""
    from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
    reg = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    reg.register(EtcdCollector(server))
    return reg
