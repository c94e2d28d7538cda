"""Differential fuzzing: random KV requests to pyetcd and to real etcd 3.5.1.

Hypothesis generates sequences of Put, Range, DeleteRange, Txn (nested, with
every compare target and result), Compact, LeaseGrant and LeaseRevoke
requests, including invalid ones.  Each request goes to both servers; the
responses (or gRPC status code and message) must be identical, apart from
the raft term.  Because the state is shared across examples and every read
is compared, a partial write or a lost write on either side shows up as a
later mismatch.
"""
from __future__ import annotations

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.etcdserverpb import rpc_pb2_grpc as pbg

KEYS = [b"a", b"b", b"ab", b"abc", b"b\x00", b"c", b"\x00", b"\xff", b"zz"]
keys = st.sampled_from(KEYS)
ends = st.sampled_from([b"", b"", b"\x00", b"b", b"c", b"abd", b"a", b"\xff\xff"])
values = st.sampled_from([b"", b"v", b"w", b"\x00\x01", "张三".encode()])
revs = st.one_of(st.just(0), st.just(0), st.just(0), st.integers(min_value=-1, max_value=60))
leases = st.sampled_from([0] * 12 + [1, 2, 77])
rare = st.sampled_from([False] * 9 + [True])  # flags that usually make a request fail
any_key = st.sampled_from(KEYS * 8 + [b""])


@st.composite
def range_req(draw):
    return pb.RangeRequest(
        key=draw(any_key), range_end=draw(ends),
        limit=draw(st.sampled_from([0, 0, 1, 2, 5, -1])), revision=draw(revs),
        sort_order=draw(st.sampled_from([0, 0, 1, 2])), sort_target=draw(st.sampled_from([0, 1, 2, 3, 4])),
        serializable=draw(st.booleans()), keys_only=draw(st.booleans()),
        count_only=draw(st.booleans()),
        min_mod_revision=draw(st.sampled_from([0, 0, 3, 10])),
        max_mod_revision=draw(st.sampled_from([0, 0, 5, 20])),
        min_create_revision=draw(st.sampled_from([0, 0, 2, 8])),
        max_create_revision=draw(st.sampled_from([0, 0, 6, 30])))


@st.composite
def put_req(draw):
    ignore_value = draw(rare)
    ignore_lease = draw(rare)
    return pb.PutRequest(
        key=draw(any_key),
        value=b"" if ignore_value and draw(st.booleans()) else draw(values),
        lease=0 if ignore_lease and draw(st.booleans()) else draw(leases),
        prev_kv=draw(st.booleans()), ignore_value=ignore_value, ignore_lease=ignore_lease)


@st.composite
def delete_req(draw):
    return pb.DeleteRangeRequest(key=draw(any_key), range_end=draw(ends),
                                 prev_kv=draw(st.booleans()))


@st.composite
def compare(draw):
    target = draw(st.integers(0, 4))
    c = pb.Compare(result=draw(st.integers(0, 3)), target=target, key=draw(keys),
                   range_end=draw(st.sampled_from([b"", b"", b"c", b"\x00"])))
    if target == 0:
        c.version = draw(st.integers(0, 3))  # small: equality is common
    elif target == 1:
        c.create_revision = draw(st.integers(0, 60))
    elif target == 2:
        c.mod_revision = draw(st.integers(0, 60))
    elif target == 3:
        c.value = draw(values)
    else:
        c.lease = draw(leases)
    return c


def request_op(depth):
    opts = [range_req().map(lambda r: pb.RequestOp(request_range=r)),
            put_req().map(lambda r: pb.RequestOp(request_put=r)),
            delete_req().map(lambda r: pb.RequestOp(request_delete_range=r))]
    if depth < 2:
        opts.append(txn_req(depth + 1).map(lambda r: pb.RequestOp(request_txn=r)))
    return st.one_of(*opts)


def txn_req(depth=0):
    return st.builds(
        lambda c, s, f: pb.TxnRequest(compare=c, success=s, failure=f),
        st.lists(compare(), max_size=3), st.lists(request_op(depth), max_size=3),
        st.lists(request_op(depth), max_size=3))


_put = put_req().map(lambda r: ("Put", r))
_txn = txn_req().map(lambda r: ("Txn", r))
_range = range_req().map(lambda r: ("Range", r))
ops = st.one_of(
    _put, _put, _put, _put, _txn, _txn, _txn, _txn, _range, _range,
    delete_req().map(lambda r: ("DeleteRange", r)),
    st.builds(pb.CompactionRequest, revision=st.integers(-1, 60), physical=st.booleans()).map(lambda r: ("Compact", r)),
    st.builds(pb.LeaseGrantRequest, TTL=st.sampled_from([1000, 1000, 1000, 9_000_000_001]),
              ID=st.sampled_from([1, 2])).map(lambda r: ("LeaseGrant", r)),
    st.builds(pb.LeaseRevokeRequest, ID=st.sampled_from([1, 2, 77])).map(lambda r: ("LeaseRevoke", r)),
)


def call(stubs, method, req):
    kv, lease = stubs
    stub = lease if method.startswith("Lease") else kv
    try:
        resp = getattr(stub, method)(req, timeout=10)
    except grpc.RpcError as exc:
        return ("error", exc.code(), exc.details())
    _zero_terms(resp)
    return ("ok", resp.SerializeToString(deterministic=True), str(resp))


def _zero_terms(msg):
    if msg.HasField("header"):
        msg.header.raft_term = 0
    if isinstance(msg, pb.TxnResponse):
        for r in msg.responses:
            which = r.WhichOneof("response")
            if which:
                _zero_terms(getattr(r, which))


@pytest.fixture(scope="module")
def pair(tmp_path_factory, etcd35):
    from pyetcd.testing import Server
    base = tmp_path_factory.mktemp("diff")
    ours = Server("pyetcd", base / "py").start()
    theirs = Server("etcd", base / "etcd").start()
    chans = [grpc.insecure_channel(s.endpoint) for s in (ours, theirs)]
    stubs = [(pbg.KVStub(c), pbg.LeaseStub(c)) for c in chans]
    yield stubs
    for c in chans:
        c.close()
    ours.stop()
    theirs.stop()
    assert "Traceback" not in ours.log(), ours.log()[-3000:]


@pytest.mark.conformance
@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(seq=st.lists(ops, min_size=1, max_size=25))
def test_random_requests_match_real_etcd(pair, seq):
    ours, theirs = pair
    for method, req in seq:
        got = call(ours, method, req)
        want = call(theirs, method, req)
        assert got == want, f"{method}({req})\npyetcd: {got}\netcd:   {want}"
    # the whole key space must agree after every sequence
    full = pb.RangeRequest(key=b"\x00", range_end=b"\x00")
    assert call(ours, "Range", full) == call(theirs, "Range", full)
