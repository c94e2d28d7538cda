"""Limits and malformed input, judged against real etcd 3.5.1: request size,
txn op count, duplicate keys, garbage bytes.  The server must answer each
with etcd's code and text and keep serving."""
from __future__ import annotations

import grpc
import pytest

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.etcdserverpb import rpc_pb2_grpc as pbg


@pytest.fixture(scope="module")
def both(tmp_path_factory, etcd35):
    from pyetcd.testing import Server
    base = tmp_path_factory.mktemp("limits")
    servers = [Server("pyetcd", base / "py").start(), Server("etcd", base / "etcd").start()]
    chans = [grpc.insecure_channel(s.endpoint, options=[("grpc.max_send_message_length", 8 << 20)])
             for s in servers]
    yield list(zip(servers, chans))
    for c in chans:
        c.close()
    for s in servers:
        s.stop()


def outcome(call, req):
    try:
        resp = call(req, timeout=10)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    if resp.HasField("header"):
        resp.header.raft_term = 0
    return "ok", resp.SerializeToString()


def _put_op(k):
    return pb.RequestOp(request_put=pb.PutRequest(key=k, value=b"v"))


CASES = {
    "value_just_under_limit": ("Put", pb.PutRequest(key=b"big", value=b"x" * (1536 * 1024 - 64))),
    "request_too_large": ("Put", pb.PutRequest(key=b"big", value=b"x" * (1536 * 1024 + 10))),
    "over_grpc_limit": ("Put", pb.PutRequest(key=b"big", value=b"x" * (2 * 1024 * 1024 + 1))),
    "txn_128_ops": ("Txn", pb.TxnRequest(success=[_put_op(b"k%03d" % i) for i in range(128)])),
    "txn_129_ops": ("Txn", pb.TxnRequest(success=[_put_op(b"k%03d" % i) for i in range(129)])),
    "txn_129_compares": ("Txn", pb.TxnRequest(compare=[pb.Compare(key=b"a")] * 129)),
    "txn_duplicate_put": ("Txn", pb.TxnRequest(success=[_put_op(b"a"), _put_op(b"a")])),
    "txn_put_in_deleted_range": ("Txn", pb.TxnRequest(success=[
        _put_op(b"b"), pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=b"a", range_end=b"c"))])),
    "txn_nested_duplicate": ("Txn", pb.TxnRequest(success=[
        _put_op(b"n"), pb.RequestOp(request_txn=pb.TxnRequest(success=[_put_op(b"n")]))])),
    "txn_nested_then_else_same_key": ("Txn", pb.TxnRequest(success=[
        pb.RequestOp(request_txn=pb.TxnRequest(success=[_put_op(b"n")], failure=[_put_op(b"n")]))])),
    "txn_empty_op": ("Txn", pb.TxnRequest(success=[pb.RequestOp()])),
    "txn_empty_compare_key": ("Txn", pb.TxnRequest(compare=[pb.Compare(key=b"")])),
    "range_negative_limit": ("Range", pb.RangeRequest(key=b"k", range_end=b"l", limit=-5)),
    "compact_negative": ("Compact", pb.CompactionRequest(revision=-3)),
}


@pytest.mark.conformance
@pytest.mark.parametrize("case", sorted(CASES))
def test_limits_match_real_etcd(both, case):
    method, req = CASES[case]
    results = [outcome(getattr(pbg.KVStub(ch), method), req) for _, ch in both]
    assert results[0] == results[1], f"pyetcd {results[0]!s:.300}\netcd   {results[1]!s:.300}"


@pytest.mark.conformance
def test_garbage_bytes_do_not_hurt(both):
    (ours, ch), _ = both
    raw = ch.unary_unary("/etcdserverpb.KV/Put", request_serializer=None, response_deserializer=None)
    for junk in (b"\xff\xff\xff", b"\x0a\x05ab", b"\x12" * 50):
        with pytest.raises(grpc.RpcError):
            raw(junk, timeout=5)
    assert pbg.KVStub(ch).Put(pb.PutRequest(key=b"alive", value=b"1")).header.revision > 0
    assert "Traceback" not in ours.log()
