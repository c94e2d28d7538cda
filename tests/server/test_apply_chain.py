"""The applier chain in process: the table, and quota, alarms and auth as
wrappers composed when the state is opened (no server, no Raft)."""
from __future__ import annotations

import pytest

from pyetcd import errors
from pyetcd.auth.store import hash_password
from pyetcd.pb.authpb import auth_pb2 as authpb
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.pyetcdpb.internal_pb2 import InternalRequest
from pyetcd.server import apply
from pyetcd.server.config import parse_args
from pyetcd.server.apply import request_kind
from pyetcd.server.stores import open_stores


class FakeQuota:
    def __init__(self, room: bool = True):
        self.room = room
        self.exceeded_calls = 0

    def available(self, request) -> bool:
        return self.room

    def exceeded(self) -> None:
        self.exceeded_calls += 1


@pytest.fixture
def state(tmp_path):
    cfg = parse_args(["--data-dir", str(tmp_path / "d")])
    stores = open_stores(cfg, str(tmp_path / "d" / "db"))
    quota = FakeQuota()
    chain = apply.build(stores, quota)
    applied = [0]

    def run(kind: str, request=None, user: str = "", rev: int = 0):
        req = InternalRequest()
        field = getattr(req, kind)
        if request is not None:
            field.CopyFrom(request)
        else:
            field.SetInParent()
        req.header.username, req.header.auth_revision = user, rev
        assert request_kind(req) == kind
        applied[0] += 1
        run.index = applied[0]
        return chain.apply(req, kind, applied[0])

    yield stores, quota, run
    stores.close()


def _get(stores, key: bytes):
    rr = stores.kv.range(key, None)
    return rr.kvs[0].value if rr.kvs else None


def test_every_replicated_request_kind_has_a_handler(state):
    stores, _, _ = state
    table = apply.BackendApplier(stores).table
    fields = {f.name for f in InternalRequest.DESCRIPTOR.fields} - {"header"}
    # ranges are served locally, never proposed: the field exists for auth checks
    assert fields - set(table) == {"range"}
    assert set(table) <= fields


def test_unknown_kind_is_an_error_not_a_crash(state):
    _, _, run = state
    with pytest.raises(errors.EtcdError, match="unknown request in log entry"):
        run("range", pb.RangeRequest(key=b"k"))


def test_put_txn_delete_through_the_chain(state):
    stores, _, run = state
    assert run("put", pb.PutRequest(key=b"a", value=b"1")).header.revision == 2
    t = pb.TxnRequest(compare=[pb.Compare(key=b"a", target=pb.Compare.VALUE, value=b"1")],
                      success=[pb.RequestOp(request_put=pb.PutRequest(key=b"b", value=b"2"))])
    assert run("txn", t).succeeded
    assert _get(stores, b"b") == b"2"
    assert run("delete_range", pb.DeleteRangeRequest(key=b"a")).deleted == 1
    assert _get(stores, b"a") is None


def test_unknown_lease_writes_nothing(state):
    stores, _, run = state
    with pytest.raises(errors.EtcdError, match="requested lease not found"):
        run("put", pb.PutRequest(key=b"a", value=b"1", lease=99))
    assert _get(stores, b"a") is None and stores.kv.current_rev == 1


def test_over_quota_write_is_applied_but_answered_nospace(state):
    stores, quota, run = state
    quota.room = False
    with pytest.raises(errors.EtcdError, match="database space exceeded"):
        run("put", pb.PutRequest(key=b"a", value=b"1"))
    assert _get(stores, b"a") == b"1"         # applied on every member
    assert quota.exceeded_calls == 1          # this member raises the alarm
    run("delete_range", pb.DeleteRangeRequest(key=b"a"))   # deletes cost nothing
    ro = pb.TxnRequest(success=[pb.RequestOp(request_range=pb.RangeRequest(key=b"a"))])
    run("txn", ro)
    assert quota.exceeded_calls == 1


def test_nospace_alarm_refuses_writes_but_not_deletes_or_reads(state):
    stores, _, run = state
    run("put", pb.PutRequest(key=b"a", value=b"1"))
    run("alarm", pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=1, alarm=pb.NOSPACE))
    for kind, r in [("put", pb.PutRequest(key=b"b", value=b"2")),
                    ("lease_grant", pb.LeaseGrantRequest(ID=5, TTL=10)),
                    ("txn", pb.TxnRequest(success=[pb.RequestOp(
                        request_put=pb.PutRequest(key=b"c"))]))]:
        with pytest.raises(errors.EtcdError, match="database space exceeded"):
            run(kind, r)
    ro = pb.TxnRequest(success=[pb.RequestOp(request_range=pb.RangeRequest(key=b"a"))])
    assert run("txn", ro).responses[0].response_range.kvs[0].value == b"1"
    assert run("delete_range", pb.DeleteRangeRequest(key=b"a")).deleted == 1
    run("alarm", pb.AlarmRequest(action=pb.AlarmRequest.DEACTIVATE, memberID=1, alarm=pb.NOSPACE))
    run("put", pb.PutRequest(key=b"b", value=b"2"))
    assert _get(stores, b"b") == b"2"


def test_corrupt_alarm_refuses_deletes_too(state):
    _, _, run = state
    run("alarm", pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=1, alarm=pb.CORRUPT))
    with pytest.raises(errors.EtcdError, match="corrupt cluster"):
        run("delete_range", pb.DeleteRangeRequest(key=b"a"))


def _enable_auth(run):
    run("auth_user_add", pb.AuthUserAddRequest(name="root", options=authpb.UserAddOptions(
        no_password=True)))
    run("auth_role_add", pb.AuthRoleAddRequest(name="root"))
    run("auth_user_grant_role", pb.AuthUserGrantRoleRequest(user="root", role="root"))
    run("auth_user_add", pb.AuthUserAddRequest(name="alice",
                                               hashedPassword=hash_password("secret", 4)))
    run("auth_enable", pb.AuthEnableRequest())


def test_auth_is_checked_on_the_apply_path(state):
    stores, _, run = state
    _enable_auth(run)
    rev = stores.auth.revision
    with pytest.raises(errors.EtcdError, match="permission denied"):
        run("put", pb.PutRequest(key=b"a", value=b"1"), user="alice", rev=rev)
    assert _get(stores, b"a") is None
    with pytest.raises(errors.EtcdError, match="user name is empty"):
        run("put", pb.PutRequest(key=b"a", value=b"1"))
    with pytest.raises(errors.EtcdError, match="permission denied"):
        run("auth_role_add", pb.AuthRoleAddRequest(name="r"), user="alice", rev=rev)
    run("put", pb.PutRequest(key=b"a", value=b"1"), user="root", rev=rev)
    assert _get(stores, b"a") == b"1"


def test_auth_revision_changed_between_proposal_and_apply(state):
    stores, _, run = state
    _enable_auth(run)
    old = stores.auth.revision
    run("auth_role_add", pb.AuthRoleAddRequest(name="writers"), user="root", rev=old)
    with pytest.raises(errors.EtcdError, match="revision of auth store is old"):
        run("put", pb.PutRequest(key=b"a", value=b"1"), user="root", rev=old)


def test_authenticate_names_the_token_after_the_index(state):
    stores, _, run = state
    _enable_auth(run)
    req = InternalRequest()
    req.authenticate.name, req.authenticate.simple_token = "alice", "abcdefghijklmnop"
    resp = run("authenticate", req.authenticate)
    assert resp.token == f"abcdefghijklmnop.{run.index}"
    assert stores.auth.info_from_token(resp.token).username == "alice"
