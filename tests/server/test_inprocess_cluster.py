"""Server pieces that used to be reachable only through subprocesses,
tested on an in-process cluster (pyetcd.testing.inprocess): real servers,
an in-memory network, Raft time moved by the test."""
from __future__ import annotations

import asyncio

import pytest

from pyetcd import errors
from pyetcd.auth.store import CREDENTIALS, Credentials
from pyetcd.pb.authpb import auth_pb2 as authpb
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.raft.types import ConfChange, ConfChangeType
from pyetcd.testing.inprocess import InProcessCluster


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_writes_replicate_and_every_member_serves_them(tmp_path):
    async def go():
        async with InProcessCluster(tmp_path) as c:
            leader = await c.wait_leader()
            for i in range(20):
                await leader.put(pb.PutRequest(key=b"k%02d" % i, value=b"%d" % i))
            await c.until(lambda: all(s.applied_index == leader.applied_index for s in c.running))
            for s in c.running:
                r = await s.range(pb.RangeRequest(key=b"k", range_end=b"l", serializable=True))
                assert [kv.value for kv in r.kvs] == [b"%d" % i for i in range(20)]
                assert r.header.member_id == s.member_id and r.header.revision == 21
            # a linearizable read on a follower goes through ReadIndex
            f = c.followers()[0]
            assert (await f.range(pb.RangeRequest(key=b"k00"))).kvs[0].value == b"0"
    run(go())


def test_isolated_leader_is_replaced_and_catches_up(tmp_path):
    async def go():
        async with InProcessCluster(tmp_path) as c:
            old = await c.wait_leader()
            await old.put(pb.PutRequest(key=b"a", value=b"1"))
            c.isolate(old)
            others = [s for s in c.running if s is not old]
            await c.until(lambda: any(s.raft.is_leader for s in others), max_ticks=200)
            new = next(s for s in others if s.raft.is_leader)
            await new.put(pb.PutRequest(key=b"a", value=b"2"))
            c.heal()
            await c.until(lambda: old.leader_id == new.member_id and
                          old.applied_index == new.applied_index, max_ticks=200)
            r = await old.range(pb.RangeRequest(key=b"a", serializable=True))
            assert r.kvs[0].value == b"2"
    run(go())


def test_lagging_member_installs_a_snapshot(tmp_path):
    flags = ["--snapshot-count", "20", "--experimental-snapshot-catchup-entries", "5"]

    async def go():
        async with InProcessCluster(tmp_path, flags=flags) as c:
            leader = await c.wait_leader()
            lagging = c.followers()[0]
            c.isolate(lagging)
            for i in range(60):
                await leader.put(pb.PutRequest(key=b"k%02d" % i, value=b"v"))
            await c.until(lambda: leader.snapshots.snap_index >= 40)
            assert leader.raft.storage.first_index() > lagging.applied_index + 1
            c.heal()
            await c.until(lambda: lagging.applied_index >= leader.applied_index, max_ticks=200)
            assert lagging.snapshots.snap_index >= 40       # by snapshot, not by log
            r = await lagging.range(pb.RangeRequest(key=b"k", range_end=b"l", serializable=True,
                                                    count_only=True))
            assert r.count == 60
            assert {m.id for m in lagging.cluster.members.values()} == \
                {s.member_id for s in c.running}
    run(go())


def test_membership_checks(tmp_path):
    async def go():
        async with InProcessCluster(tmp_path) as c:
            leader = await c.ready()
            other = c.followers()[0]
            used = other.cluster.members[other.member_id].peer_urls[0]
            with pytest.raises(errors.EtcdError, match="Peer URLs already exists"):
                await leader.member_add([used], False)
            with pytest.raises(errors.EtcdError, match="given member URLs are invalid"):
                await leader.member_add(["ftp://x:1"], False)
            with pytest.raises(errors.EtcdError, match="member not found"):
                await leader.member_remove(0x1234)
            # strict reconfiguration: streams younger than 5 s make the cluster unhealthy
            with pytest.raises(errors.EtcdError, match="unhealthy cluster"):
                await leader.member_add(["http://new.peer.invalid:2380"], False)
            # with one of three members cut off, removing another would lose the quorum
            c.isolate(c.followers()[1])
            with pytest.raises(errors.EtcdError, match="unhealthy cluster"):
                await leader.member_remove(other.member_id)
            # a committed change is validated again against the applied list
            removed = ConfChange(ConfChangeType.REMOVE_NODE, 0x99, b"")
            assert leader.reconfig.check(removed).message == errors.MEMBER_NOT_FOUND.message
            dup = ConfChange(ConfChangeType.ADD_NODE, other.member_id, b"")
            assert leader.reconfig.check(dup).message == errors.MEMBER_EXIST.message
    run(go())


def test_member_add_and_remove(tmp_path):
    async def go():
        async with InProcessCluster(tmp_path, flags=["--strict-reconfig-check=false"]) as c:
            leader = await c.wait_leader()
            await leader.put(pb.PutRequest(key=b"before", value=b"1"))
            resp = await leader.member_add(["http://m3.peer.invalid:2380"], True)
            assert resp.member.isLearner and len(resp.members) == 4
            await c.until(lambda: all(len(s.cluster.members) == 4 for s in c.running))
            new = await c.add_member("m3")
            await c.until(lambda: new.applied_index >= leader.applied_index, max_ticks=200)
            assert (await new.range(pb.RangeRequest(key=b"before", serializable=True))).count == 1
            await c.until(lambda: _promotable(leader, new.member_id), max_ticks=100)
            resp = await leader.member_promote(pb.MemberPromoteRequest(ID=new.member_id))
            assert not [m for m in resp.members if m.isLearner]
            victim = c.followers()[0]
            resp = await leader.member_remove(victim.member_id)
            assert victim.member_id not in {m.ID for m in resp.members}
            await c.until(lambda: victim.fatal is not None)   # a removed member stops
    run(go())


def _promotable(leader, mid) -> bool:
    st = leader.raft.status()
    return mid in st.progress and st.progress[mid].match >= st.progress[leader.member_id].match


def test_keepalive_and_time_to_live_are_forwarded_to_the_leader(tmp_path):
    async def go():
        async with InProcessCluster(tmp_path, grpc=True) as c:
            leader = await c.wait_leader()
            grant = await leader.lease_grant(pb.LeaseGrantRequest(TTL=30))
            f = c.followers()[0]
            await c.until(lambda: f.applied_index >= leader.applied_index)
            ttl = await f.lease_time_to_live(pb.LeaseTimeToLiveRequest(ID=grant.ID))
            assert ttl.header.member_id == leader.member_id   # answered by the leader
            assert ttl.grantedTTL == 30 and 0 < ttl.TTL <= 30
            ka = await f.lease_renew(pb.LeaseKeepAliveRequest(ID=grant.ID))
            assert ka.header.member_id == leader.member_id and ka.TTL == 30
    run(go())


def test_expired_lease_is_revoked_by_the_leader_on_raft_time(tmp_path):
    async def go():
        async with InProcessCluster(tmp_path) as c:
            leader = await c.wait_leader()
            g = await leader.lease_grant(pb.LeaseGrantRequest(TTL=3))
            await leader.put(pb.PutRequest(key=b"ephemeral", value=b"x", lease=g.ID))
            await c.tick(10)   # 1 s of fake time: still alive
            assert leader.lessor.lookup(g.ID) is not None
            await c.until(lambda: leader.lessor.lookup(g.ID) is None, max_ticks=80)
            await c.until(lambda: all(s.kv.range(b"ephemeral", None).count == 0
                                      for s in c.running))
    run(go())


def test_auth_gate_tokens_and_permissions(tmp_path):
    async def go():
        async with InProcessCluster(tmp_path, n=1) as c:
            s = await c.wait_leader()
            for kind, r in [
                    ("auth_user_add", pb.AuthUserAddRequest(name="root", password="rootpw")),
                    ("auth_role_add", pb.AuthRoleAddRequest(name="root")),
                    ("auth_user_grant_role", pb.AuthUserGrantRoleRequest(user="root", role="root")),
                    ("auth_user_add", pb.AuthUserAddRequest(name="alice", password="pw")),
                    ("auth_role_add", pb.AuthRoleAddRequest(name="reader")),
                    ("auth_role_grant_permission", pb.AuthRoleGrantPermissionRequest(
                        name="reader", perm=authpb.Permission(permType=authpb.Permission.READ,
                                                              key=b"pub/", range_end=b"pub0"))),
                    ("auth_user_grant_role", pb.AuthUserGrantRoleRequest(user="alice", role="reader")),
                    ("auth_enable", pb.AuthEnableRequest())]:
                await s.auth_request(kind, r)
            with pytest.raises(errors.EtcdError, match="authentication failed"):
                await s.authenticate("alice", "wrong")
            token = (await s.authenticate("alice", "pw")).token
            assert token.endswith(f".{s.applied_index}")
            CREDENTIALS.set(Credentials(token=token))
            assert (await s.gate.auth_info()).username == "alice"
            await s.range(pb.RangeRequest(key=b"pub/x"))
            with pytest.raises(errors.EtcdError, match="permission denied"):
                await s.range(pb.RangeRequest(key=b"secret"))
            with pytest.raises(errors.EtcdError, match="permission denied"):
                await s.put(pb.PutRequest(key=b"pub/x", value=b"1"))
            with pytest.raises(errors.EtcdError, match="permission denied"):
                await s.gate.check_admin()
            CREDENTIALS.set(Credentials(token="nonsense.1"))
            with pytest.raises(errors.EtcdError, match="invalid auth token"):
                await s.gate.auth_info()
            CREDENTIALS.set(Credentials(cn="root"))   # a verified client certificate's CN
            await s.gate.check_admin()
            await s.put(pb.PutRequest(key=b"secret", value=b"1"))
    run(go())
