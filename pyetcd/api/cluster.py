"""The Cluster service: member list and membership changes, with etcd's
strict reconfiguration checks (``--strict-reconfig-check``, on by default):

- adding a voter needs a quorum of the *new* size among started members
  (``re-configuration failed due to not enough started members``) and this
  member connected to every voter for at least 5 s (``unhealthy cluster``);
- removing a voter must leave a quorum of connected members;
- peer URLs must be valid and unused (``Peer URLs already exists``); an
  unknown id is ``member not found``;
- a learner is promoted only when its log is within 90 % of the leader's.
"""
from __future__ import annotations

import time
from urllib.parse import urlsplit

from pyetcd import errors
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.server.membership import Member, compute_member_id

from .common import unary

HEALTH_INTERVAL = 5.0
MAX_LEARNERS = 1


def _check_urls(urls) -> list[str]:
    out = []
    for u in urls:
        p = urlsplit(u)
        if p.scheme not in ("http", "https", "unix", "unixs") or not p.netloc or p.path not in ("", "/"):
            raise errors.MEMBER_BAD_URLS()
        out.append(u)
    if not out:
        raise errors.MEMBER_BAD_URLS()
    return out


class ClusterServicer:
    def __init__(self, server):
        self.s = server

    def _resp_members(self):
        return self.s.cluster.to_pb()

    @unary
    async def MemberList(self, request, context):
        s = self.s
        if request.linearizable:
            await s.linearizable_read()
        resp = pb.MemberListResponse(members=self._resp_members())
        s.header(resp.header)
        return resp

    @unary
    async def MemberAdd(self, request, context):
        s = self.s
        await s.check_admin()  # etcd's checkMembershipOperationPermission
        urls = _check_urls(request.peerURLs)
        for u in urls:
            if s.cluster.peer_url_owner(u) is not None:
                raise errors.PEER_URL_EXIST()
        if request.isLearner and len(s.cluster.learners()) >= MAX_LEARNERS:
            raise errors.TOO_MANY_LEARNERS()
        if s.cfg.strict_reconfig_check and not request.isLearner:
            self._may_add_voter()
        mid = compute_member_id(urls, "", int(time.time()))
        m = Member(mid, "", urls, (), request.isLearner)
        ctype = "add_learner" if request.isLearner else "add"
        members = await s.propose_conf_change(ctype, mid, m)
        resp = pb.MemberAddResponse(member=pb.Member(ID=mid, peerURLs=urls, isLearner=request.isLearner),
                                    members=members)
        s.header(resp.header)
        return resp

    def _may_add_voter(self) -> None:
        s = self.s
        voters = s.cluster.voters()
        started = sum(1 for i in voters if s.cluster.members[i].name)
        if started < (len(voters) + 1) // 2 + 1:
            raise errors.MEMBER_NOT_ENOUGH_STARTED()
        if not self._connected_since(voters, len(voters)):
            raise errors.UNHEALTHY()

    def _connected_since(self, voters, need: int) -> bool:
        """At least ``need`` of ``voters`` (counting this member) have had a
        stream from us for HEALTH_INTERVAL seconds."""
        import asyncio
        t = self.s.transport
        now = asyncio.get_running_loop().time()
        n = 0
        for i in voters:
            if i == self.s.member_id:
                n += 1
            elif t.is_active(i) and now - t.active_since.get(i, now) >= HEALTH_INTERVAL:
                n += 1
        return n >= need

    @unary
    async def MemberRemove(self, request, context):
        s = self.s
        await s.check_admin()  # etcd's checkMembershipOperationPermission
        mid = request.ID
        m = s.cluster.members.get(mid)
        if m is None:
            raise errors.MEMBER_NOT_FOUND()
        if s.cfg.strict_reconfig_check and not m.is_learner:
            voters = s.cluster.voters()
            started = sum(1 for i in voters if s.cluster.members[i].name and i != mid)
            if started < (len(voters) - 1) // 2 + 1:
                raise errors.MEMBER_NOT_ENOUGH_STARTED()
            down = mid != s.member_id and not s.transport.is_active(mid)
            if not down:
                quorum_after = (len(voters) - 1) // 2 + 1
                active = sum(1 for i in voters if i == s.member_id or s.transport.is_active(i))
                if active - 1 < quorum_after:
                    raise errors.UNHEALTHY()
        members = await s.propose_conf_change("remove", mid, None)
        resp = pb.MemberRemoveResponse(members=members)
        s.header(resp.header)
        return resp

    @unary
    async def MemberUpdate(self, request, context):
        s = self.s
        await s.check_admin()  # etcd's checkMembershipOperationPermission
        m = s.cluster.members.get(request.ID)
        if m is None:
            raise errors.MEMBER_NOT_FOUND()
        urls = _check_urls(request.peerURLs)
        for u in urls:
            owner = s.cluster.peer_url_owner(u)
            if owner is not None and owner != request.ID:
                raise errors.PEER_URL_EXIST()
        upd = Member(m.id, m.name, urls, m.client_urls, m.is_learner)
        members = await s.propose_conf_change("update", m.id, upd)
        resp = pb.MemberUpdateResponse(members=members)
        s.header(resp.header)
        return resp

    @unary
    async def MemberPromote(self, request, context):
        s = self.s
        await s.check_admin()  # etcd's checkMembershipOperationPermission
        m = s.cluster.members.get(request.ID)
        if m is None:
            raise errors.MEMBER_NOT_FOUND()
        if not m.is_learner:
            raise errors.MEMBER_NOT_LEARNER()
        if not s.raft.is_leader:
            return await s.forward_to_leader("Cluster", "MemberPromote", request)
        st = s.raft.node.status()
        pr = st.progress.get(m.id)
        leader_match = st.progress[s.member_id].match if s.member_id in st.progress else 0
        if pr is None or leader_match == 0 or pr.match < leader_match * 0.9:
            raise errors.LEARNER_NOT_READY()
        promoted = Member(m.id, m.name, m.peer_urls, m.client_urls, False)
        members = await s.propose_conf_change("add", m.id, promoted)
        resp = pb.MemberPromoteResponse(members=members)
        s.header(resp.header)
        return resp
