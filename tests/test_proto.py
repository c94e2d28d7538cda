"""The generated code is current, and our protos match etcd's field by field.

The independent copy of etcd's descriptors is the one PyPI's ``etcd3``
package ships (generated from etcd's own rpc.proto, kv.proto, auth.proto).
It is loaded in a subprocess, because both sets define the same full names
(``etcdserverpb.RangeRequest``) and cannot share one descriptor pool.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from pyetcd.pb.authpb import auth_pb2
from pyetcd.pb.etcdserverpb import rpc_pb2
from pyetcd.pb.mvccpb import kv_pb2

ROOT = Path(__file__).resolve().parent.parent

# fields etcd added after the etcd3 package was generated (all in etcd 3.5)
NEWER_FIELDS = {
    "etcdserverpb.HashKVResponse.hash_revision", "etcdserverpb.StatusResponse.errors",
    "etcdserverpb.StatusResponse.dbSizeInUse", "etcdserverpb.StatusResponse.isLearner",
    "etcdserverpb.Member.isLearner", "etcdserverpb.MemberAddRequest.isLearner",
    "etcdserverpb.MemberListRequest.linearizable", "etcdserverpb.AuthUserAddRequest.options",
    "etcdserverpb.AuthUserAddRequest.hashedPassword",
    "etcdserverpb.AuthUserChangePasswordRequest.hashedPassword",
    "etcdserverpb.WatchCreateRequest.fragment", "etcdserverpb.WatchResponse.fragment",
    "etcdserverpb.StatusResponse.raftAppliedIndex", "etcdserverpb.LeaseGrantRequest.ID",
    "etcdserverpb.AuthStatusResponse.enabled", "etcdserverpb.AuthStatusResponse.authRevision",
    "authpb.User.options", "etcdserverpb.WatchRequest.progress_request",
    "etcdserverpb.WatchCreateRequest.watch_id",
}

# string fields etcd 3.5 declares as bytes (identical on the wire)
STRING_TO_BYTES = {
    "etcdserverpb.AuthRoleRevokePermissionRequest.key",
    "etcdserverpb.AuthRoleRevokePermissionRequest.range_end",
}

DUMP = r"""
import base64, json
import etcd3.etcdrpc.rpc_pb2 as r, etcd3.etcdrpc.kv_pb2 as k, etcd3.etcdrpc.auth_pb2 as a
print(json.dumps({m.DESCRIPTOR.package: base64.b64encode(m.DESCRIPTOR.serialized_pb).decode()
                  for m in (r, k, a)}))
"""


def test_generated_code_is_current():
    r = subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _reference() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    r = subprocess.run([sys.executable, "-c", DUMP], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    out = {}
    for pkg, b64 in json.loads(r.stdout).items():
        fd = descriptor_pb2.FileDescriptorProto()
        fd.ParseFromString(base64.b64decode(b64))
        out[pkg] = fd
    return out


def _ours() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    out = {}
    for mod in (rpc_pb2, kv_pb2, auth_pb2):
        fd = descriptor_pb2.FileDescriptorProto()
        mod.DESCRIPTOR.CopyToProto(fd)
        out[fd.package] = fd
    return out


def _messages(fd, prefix):
    def walk(msgs, scope):
        for m in msgs:
            name = f"{scope}.{m.name}"
            yield name, m
            yield from walk(m.nested_type, name)
    return dict(walk(fd.message_type, prefix))


def _enums(fd, prefix):
    out = {f"{prefix}.{e.name}": e for e in fd.enum_type}
    for name, m in _messages(fd, prefix).items():
        for e in m.enum_type:
            out[f"{name}.{e.name}"] = e
    return out


def _short(type_name: str) -> str:
    return type_name.rsplit(".", 1)[-1]


@pytest.fixture(scope="module")
def descriptors():
    return _reference(), _ours()


@pytest.mark.parametrize("pkg", ["etcdserverpb", "mvccpb", "authpb"])
def test_messages_match_etcd(descriptors, pkg):
    ref, ours = descriptors
    ref_msgs, our_msgs = _messages(ref[pkg], pkg), _messages(ours[pkg], pkg)
    missing = set(ref_msgs) - set(our_msgs)
    assert not missing, f"messages etcd has and we lack: {sorted(missing)}"
    checked = 0
    for name, rm in ref_msgs.items():
        om = our_msgs[name]
        our_fields = {f.name: f for f in om.field}
        for rf in rm.field:
            assert rf.name in our_fields, f"{name}.{rf.name} missing"
            of = our_fields[rf.name]
            ftype = of.type
            if f"{name}.{rf.name}" in STRING_TO_BYTES and ftype == of.TYPE_BYTES:
                ftype = of.TYPE_STRING  # same wire encoding; etcd itself changed it
            assert (of.number, ftype, of.label) == (rf.number, rf.type, rf.label), f"{name}.{rf.name}"
            assert _short(of.type_name) == _short(rf.type_name), f"{name}.{rf.name} type"
            assert of.HasField("oneof_index") == rf.HasField("oneof_index"), f"{name}.{rf.name} oneof"
            checked += 1
        extra = {f"{name}.{f}" for f in our_fields} - {f"{name}.{f.name}" for f in rm.field}
        assert extra <= NEWER_FIELDS, f"fields etcd does not have: {sorted(extra - NEWER_FIELDS)}"
    assert checked > (100 if pkg == "etcdserverpb" else 5)


@pytest.mark.parametrize("pkg", ["etcdserverpb", "mvccpb", "authpb"])
def test_enums_match_etcd(descriptors, pkg):
    ref, ours = descriptors
    ref_enums, our_enums = _enums(ref[pkg], pkg), _enums(ours[pkg], pkg)
    for name, re_ in ref_enums.items():
        assert name in our_enums, name
        assert {(v.name, v.number) for v in re_.value} <= {(v.name, v.number) for v in our_enums[name].value}, name


def test_services_match_etcd(descriptors):
    ref, ours = descriptors
    rs = {s.name: s for s in ref["etcdserverpb"].service}
    os_ = {s.name: s for s in ours["etcdserverpb"].service}
    assert set(rs) <= set(os_)
    for name, svc in rs.items():
        ours_m = {m.name: m for m in os_[name].method}
        for m in svc.method:
            om = ours_m[m.name]
            assert (_short(om.input_type), _short(om.output_type), om.client_streaming,
                    om.server_streaming) == (_short(m.input_type), _short(m.output_type),
                                             m.client_streaming, m.server_streaming), f"{name}/{m.name}"


def test_fast_runtimes_are_installed():
    """The README's install gets the fast path: protobuf's upb runtime (not
    the pure-Python one) and, on Linux, uvloop (pyetcd.main runs on it)."""
    from google.protobuf.internal import api_implementation
    assert api_implementation.Type() == "upb"
    if sys.platform.startswith("linux"):
        import uvloop  # noqa: F401
