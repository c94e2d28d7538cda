"""--listen-metrics-urls: /metrics (read by a strict Prometheus text parser
and compared with real etcd 3.5.1's families), /health (flips to false when
quorum is lost, and with an alarm), /livez, /readyz, /version."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import grpc
import pytest

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.etcdserverpb import rpc_pb2_grpc as rpcg
from pyetcd.testing import LocalCluster, free_port

from .promtext import parse

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, no proxy


def get(url: str, method: str = "GET") -> tuple[int, str, dict]:
    req = urllib.request.Request(url, method=method)
    try:
        with _opener.open(req, timeout=15) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def start_with_metrics(servers, kind="pyetcd"):
    port = free_port()
    s = servers(kind, extra=["--listen-metrics-urls", f"http://127.0.0.1:{port}"]).start()
    return s, f"http://127.0.0.1:{port}"


def wait_for(fn, timeout=20.0, every=0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(every)


def _exercise(endpoint: str) -> None:
    ch = grpc.insecure_channel(endpoint)
    kv = rpcg.KVStub(ch)
    for i in range(5):
        kv.Put(pb.PutRequest(key=b"k%d" % i, value=b"v"))
    kv.Range(pb.RangeRequest(key=b"k0"))
    with pytest.raises(grpc.RpcError) as ei:
        kv.Put(pb.PutRequest(key=b"", value=b"v"))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ch.close()


def test_metrics_counts_what_happened(servers):
    s, base = start_with_metrics(servers)
    _exercise(s.endpoint)
    code, text, headers = get(base + "/metrics")
    assert code == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    fams = parse(text)
    handled = fams["grpc_server_handled_total"]
    assert handled.type == "counter"
    kv = dict(grpc_service="etcdserverpb.KV", grpc_type="unary")
    assert handled.value(grpc_method="Put", grpc_code="OK", **kv) == 5
    assert handled.value(grpc_method="Put", grpc_code="InvalidArgument", **kv) == 1
    ranges = handled.value(grpc_method="Range", grpc_code="OK", **kv)
    assert ranges >= 1  # (the readiness probe's too)
    assert fams["grpc_server_started_total"].value(grpc_method="Put", **kv) == 6
    assert fams["etcd_server_has_leader"].value() == 1
    assert fams["etcd_server_is_leader"].value() == 1
    assert fams["etcd_server_leader_changes_seen_total"].value() >= 1
    applied = fams["etcd_server_proposals_applied_total"].value()
    assert applied >= 5 and fams["etcd_server_proposals_committed_total"].value() >= applied
    assert fams["etcd_server_proposals_pending"].value() == 0
    assert fams["etcd_debugging_mvcc_current_revision"].value() == 6
    assert fams["etcd_mvcc_db_total_size_in_bytes"].value() > 0
    wal = fams["etcd_disk_wal_fsync_duration_seconds"]
    assert wal.type == "histogram"
    assert [v for n, _, v in wal.samples if n.endswith("_count")][0] >= 1
    commit = [v for n, _, v in fams["etcd_disk_backend_commit_duration_seconds"].samples
              if n.endswith("_count")][0]
    assert commit >= 1
    assert fams["process_cpu_seconds_total"].value() > 0
    assert fams["process_resident_memory_bytes"].value() > 0
    assert fams["etcd_server_id"].samples[0][1]["server_id"]
    # and the counters move with the next request
    _exercise(s.endpoint)
    fams2 = parse(get(base + "/metrics")[1])
    assert fams2["grpc_server_handled_total"].value(grpc_method="Put", grpc_code="OK", **kv) == 10
    assert fams2["etcd_debugging_mvcc_current_revision"].value() == 11
    assert fams2["grpc_server_handled_total"].value(grpc_method="Range", grpc_code="OK", **kv) == ranges + 1


@pytest.mark.conformance
def test_metric_families_match_real_etcd(servers, etcd35):
    """Every etcd_/grpc_/process_ family pyetcd exports exists in real etcd
    3.5.1's /metrics after the same requests, with the same type and the same
    label names (the peer families appear in a cluster only)."""
    ours, our_base = start_with_metrics(servers, "pyetcd")
    theirs, their_base = start_with_metrics(servers, "etcd")
    _exercise(ours.endpoint)
    _exercise(theirs.endpoint)
    mine = parse(get(our_base + "/metrics")[1])
    real = parse(get(their_base + "/metrics")[1])
    cluster_only = {"etcd_network_active_peers", "etcd_network_peer_round_trip_time_seconds"}
    checked = 0
    for name, fam in mine.items():
        if name.startswith("python_") or name in cluster_only:
            continue
        assert name in real, f"{name} is not one of etcd's metrics"
        assert fam.type == real[name].type or {fam.type, real[name].type} == {"untyped", "counter"}, name
        ours_labels = {frozenset(k for k in lb if k != "le") for _, lb, _ in fam.samples}
        their_labels = {frozenset(k for k in lb if k != "le") for _, lb, _ in real[name].samples}
        assert ours_labels <= their_labels or not fam.samples, (name, ours_labels, their_labels)
        checked += 1
    assert checked >= 25
    kv = dict(grpc_service="etcdserverpb.KV", grpc_type="unary")
    for fams in (mine, real):
        assert fams["grpc_server_handled_total"].value(grpc_method="Put", grpc_code="InvalidArgument", **kv) == 1
        assert fams["grpc_server_handled_total"].value(grpc_method="Put", grpc_code="OK", **kv) == 5


@pytest.mark.conformance
def test_health_and_version_like_real_etcd(servers, etcd35):
    ours, our_base = start_with_metrics(servers, "pyetcd")
    theirs, their_base = start_with_metrics(servers, "etcd")
    for base in (our_base, their_base):
        code, body, _ = get(base + "/health")
        assert (code, json.loads(body)) == (200, {"health": "true", "reason": ""})
        code, body, _ = get(base + "/health?serializable=true")
        assert (code, json.loads(body)) == (200, {"health": "true", "reason": ""})
        code, _, headers = get(base + "/health", method="POST")
        assert code == 405 and headers["Allow"] == "GET"
    # etcd serves /version on client URLs only (gRPC's port here), pyetcd on
    # the metrics URL as well, in etcd's format
    code, body, _ = get(our_base + "/version")
    assert (code, json.loads(body)) == (200, {"etcdserver": "3.5.13", "etcdcluster": "3.5.0"})


def test_health_follows_alarms(servers):
    s, base = start_with_metrics(servers)
    ch = grpc.insecure_channel(s.endpoint)
    m = rpcg.MaintenanceStub(ch)
    st = m.Status(pb.StatusRequest())
    m.Alarm(pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=st.header.member_id,
                            alarm=pb.NOSPACE))
    code, body, _ = get(base + "/health")
    assert (code, json.loads(body)) == (503, {"health": "false", "reason": "ALARM NOSPACE"})
    code, body, _ = get(base + "/health?exclude=NOSPACE")
    assert (code, json.loads(body)) == (200, {"health": "true", "reason": ""})
    code, body, _ = get(base + "/readyz?verbose")  # NOSPACE is not corruption
    assert code == 200 and "[+]data_corruption ok" in body and body.endswith("ok\n")
    m.Alarm(pb.AlarmRequest(action=pb.AlarmRequest.DEACTIVATE, memberID=st.header.member_id,
                            alarm=pb.NOSPACE))
    assert get(base + "/health")[0] == 200
    fams = parse(get(base + "/metrics")[1])
    assert fams["etcd_server_health_failures"].value() == 1
    assert fams["etcd_server_health_success"].value() == 2
    ch.close()


def test_livez_readyz(servers):
    s, base = start_with_metrics(servers)
    assert get(base + "/livez") == (200, "ok\n", get(base + "/livez")[2])
    code, body, _ = get(base + "/readyz?verbose")
    assert code == 200
    assert body.splitlines() == ["[+]data_corruption ok", "[+]linearizable_read ok",
                                 "[+]non_learner ok", "[+]serializable_read ok", "ok"]
    code, body, _ = get(base + "/readyz?exclude=linearizable_read&verbose")
    assert code == 200 and "linearizable_read" not in body
    assert get(base + "/readyz/non_learner")[:2] == (200, "ok\n")
    assert get(base + "/readyz/nope")[0] == 404
    assert get(base + "/nope")[0] == 404


def test_health_false_without_quorum(workdir):
    c = LocalCluster("pyetcd", workdir / "c", n=3)
    bases = []
    for m in c.members:
        port = free_port()
        m.extra += ["--listen-metrics-urls", f"http://127.0.0.1:{port}"]
        bases.append(f"http://127.0.0.1:{port}")
    c.start()
    try:
        assert wait_for(lambda: all(get(b + "/health")[0] == 200 for b in bases))
        fams = parse(get(bases[0] + "/metrics")[1])
        assert fams["etcd_server_has_leader"].value() == 1
        peers = [lb["Remote"] for _, lb, _ in fams["etcd_network_active_peers"].samples]
        assert len(peers) == 2
        rtt = fams["etcd_network_peer_round_trip_time_seconds"]
        assert {lb["To"] for _, lb, _ in rtt.samples} == set(peers)
        c.members[1].stop()
        c.members[2].stop()
        # check-quorum: the survivor loses its leader within an election timeout or two
        assert wait_for(lambda: get(bases[0] + "/health")[0] == 503)
        code, body, _ = get(bases[0] + "/health")
        assert json.loads(body) == {"health": "false", "reason": "RAFT NO LEADER"}
        code, body, _ = get(bases[0] + "/health?serializable=true")
        assert (code, json.loads(body)) == (200, {"health": "true", "reason": ""})
        assert get(bases[0] + "/livez")[0] == 200  # alive, just not ready
        code, body, _ = get(bases[0] + "/readyz")
        assert code == 503 and "[-]linearizable_read failed" in body
        assert parse(get(bases[0] + "/metrics")[1])["etcd_server_has_leader"].value() == 0
        c.members[1].start(wait=False)
        assert wait_for(lambda: get(bases[0] + "/health")[0] == 200, timeout=30)
    finally:
        c.stop()
