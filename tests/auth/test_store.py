"""The auth store on a real backend: root rules, revisions, persistence."""
from __future__ import annotations

import pytest

from pyetcd import errors
from pyetcd.auth.store import AuthInfo, AuthStore, hash_password
from pyetcd.pb.authpb import auth_pb2 as authpb
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.storage.backend import Backend


@pytest.fixture
def backend(tmp_path):
    b = Backend(str(tmp_path / "db"), map_size=64 * 1024**2)
    yield b
    b.close()


def _add(store, name, pw="pw"):
    store.user_add(pb.AuthUserAddRequest(name=name, hashedPassword=hash_password(pw, 4)))


def test_root_rules_revision_and_reload(backend):
    s = AuthStore(backend)
    assert s.revision == 1 and not s.enabled
    with pytest.raises(errors.EtcdError) as ei:
        s.auth_enable()
    assert ei.value == errors.ROOT_USER_NOT_EXIST
    _add(s, "root")
    with pytest.raises(errors.EtcdError) as ei:
        s.auth_enable()
    assert ei.value == errors.ROOT_ROLE_NOT_EXIST
    s.user_grant_role("root", "root")      # the root role need not exist
    _add(s, "u")
    s.role_add("r")
    s.role_grant_permission("r", authpb.Permission(key=b"a", range_end=b"c", permType=authpb.Permission.READ))
    s.user_grant_role("u", "r")
    s.auth_enable()
    rev = s.revision
    ai = AuthInfo("u", rev)
    s.is_range_permitted(ai, b"a", b"c")
    s.is_range_permitted(ai, b"b", b"")
    for bad in ((b"a", b"d"), (b"c", b"")):
        with pytest.raises(errors.EtcdError) as ei:
            s.is_range_permitted(ai, *bad)
        assert ei.value == errors.PERMISSION_DENIED
    with pytest.raises(errors.EtcdError) as ei:
        s.is_put_permitted(ai, b"b")
    assert ei.value == errors.PERMISSION_DENIED
    with pytest.raises(errors.EtcdError) as ei:
        s.is_range_permitted(AuthInfo("", 0), b"a", b"")
    assert ei.value == errors.USER_EMPTY
    for fn, err in ((lambda: s.user_delete("root"), errors.INVALID_AUTH_MGMT),
                    (lambda: s.role_delete("root"), errors.INVALID_AUTH_MGMT),
                    (lambda: s.user_revoke_role("root", "root"), errors.INVALID_AUTH_MGMT)):
        with pytest.raises(errors.EtcdError) as ei:
            fn()
        assert ei.value == err
    s.role_add("other")                    # any mutation bumps the revision
    assert s.revision == rev + 1
    with pytest.raises(errors.EtcdError) as ei:
        s.is_range_permitted(ai, b"a", b"")
    assert ei.value == errors.AUTH_OLD_REVISION
    s.is_admin_permitted(AuthInfo("root", s.revision))
    with pytest.raises(errors.EtcdError) as ei:
        s.is_admin_permitted(AuthInfo("u", s.revision))
    assert ei.value == errors.PERMISSION_DENIED
    tok = s.authenticate("u", "prefix", 42)
    assert tok == "prefix.42" and s.info_from_token(tok) == AuthInfo("u", s.revision)
    s.user_change_password(pb.AuthUserChangePasswordRequest(name="u", hashedPassword=hash_password("x", 4)))
    assert s.info_from_token(tok) is None  # a password change invalidates the user's tokens
    ops, _ = backend.commit().result()
    backend.release(ops)
    again = AuthStore(backend)              # everything is in the buckets
    assert again.enabled and again.revision == s.revision
    assert again.user_list() == ["root", "u"] and again.role_list() == ["other", "r"]
    assert again.user_get("u") == ["r"]
