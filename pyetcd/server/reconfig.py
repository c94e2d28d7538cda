"""Membership changes on a running member (etcd's ``cluster.go``
validation and the membership half of ``server.go``).

Each change is proposed as a Raft conf change whose context is the member
and the waiting request's id (:func:`pyetcd.cluster.conf_change_context`);
once committed it is validated against the applied member list
(:meth:`Reconfig.check`, etcd's ValidateConfigurationChange: a rejected
change becomes a no-op in Raft's config too) and applied to the member
list and the peer transport.

Before proposing, ``--strict-reconfig-check`` (on by default) refuses what
would leave the cluster without a working quorum:

- adding a voter needs a quorum of the *new* size among started members
  (``re-configuration failed due to not enough started members``) and this
  member connected to every voter for at least 5 s (``unhealthy cluster``);
- removing a voter must leave a quorum of connected members;
- peer URLs must be unused (``Peer URLs already exists``); an unknown id is
  ``member not found``;
- a learner is promoted only when its log is within 90 % of the leader's
  (on the leader: followers forward the promotion there).

A member that sees its own removal applied stops (a removed leader first
hands leadership to a caught-up voter).
"""
from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit

from pyetcd import errors
from pyetcd.cluster import Member, compute_member_id, conf_change_context, parse_conf_change_context
from pyetcd.cluster.member import URL_SCHEMES
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.pyetcdpb.internal_pb2 import MemberAttrSetRequest
from pyetcd.raft.types import ConfChange, ConfChangeType
from pyetcd.util.tasks import spawn

log = logging.getLogger("pyetcd.reconfig")

HEALTH_INTERVAL = 5.0   # etcd's HealthInterval
MAX_LEARNERS = 1        # etcd's default --experimental-max-learners
PUBLISH_RETRY = 0.5

_CC_TYPES = {"add": ConfChangeType.ADD_NODE, "add_learner": ConfChangeType.ADD_LEARNER_NODE,
             "remove": ConfChangeType.REMOVE_NODE, "update": ConfChangeType.UPDATE_NODE}
_ADDS = (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE)


def check_peer_urls(urls) -> list[str]:
    """Peer URLs of a member add or update: http(s) or unix(s), host given,
    no path (``given member URLs are invalid`` otherwise)."""
    out = []
    for u in urls:
        p = urlsplit(u)
        if p.scheme not in URL_SCHEMES or not p.netloc or p.path not in ("", "/"):
            raise errors.MEMBER_BAD_URLS()
        out.append(u)
    if not out:
        raise errors.MEMBER_BAD_URLS()
    return out


class Reconfig:
    """``server``: the member (its cluster, transport, raft node, config,
    ``propose_conf_change`` and ``propose``)."""

    def __init__(self, server):
        self.s = server

    # ---- applying a committed change -----------------------------------------------------
    def check(self, cc: ConfChange) -> errors.EtcdError | None:
        """etcd's ValidateConfigurationChange, against the applied member list."""
        cl = self.s.cluster
        member, _ = parse_conf_change_context(cc.context)
        if cc.type in _ADDS:
            if cc.node_id in cl.removed:
                return errors.MEMBER_NOT_FOUND()
            m = cl.members.get(cc.node_id)
            if m is not None and not (m.is_learner and cc.type == ConfChangeType.ADD_NODE):
                return errors.MEMBER_EXIST()
            if m is None and member is not None:
                if any(cl.peer_url_owner(u) is not None for u in member.get("peerURLs", [])):
                    return errors.PEER_URL_EXIST()
        elif cc.type in (ConfChangeType.REMOVE_NODE, ConfChangeType.UPDATE_NODE):
            if cc.node_id not in cl.members:
                return errors.MEMBER_NOT_FOUND()
        return None

    def apply(self, cc: ConfChange) -> None:
        """A validated change: the member list and the peer transport."""
        s = self.s
        cl, transport = s.cluster, s.transport
        member, _ = parse_conf_change_context(cc.context)
        if cc.type in _ADDS:
            if cc.node_id in cl.members:
                cl.promote(cc.node_id)
            elif member is not None:
                m = Member(cc.node_id, member.get("name", ""), member.get("peerURLs", []),
                           member.get("clientURLs", []), cc.type == ConfChangeType.ADD_LEARNER_NODE)
                cl.add(m)
                transport.add_peer(m.id, m.peer_urls)
        elif cc.type == ConfChangeType.REMOVE_NODE:
            cl.remove(cc.node_id)
            if cc.node_id != s.member_id:
                spawn(transport.remove_peer(cc.node_id), log, f"removal of peer {cc.node_id:x}")
            else:
                spawn(self._stop_after_removal(), log, "stop after this member's removal")
        elif cc.type == ConfChangeType.UPDATE_NODE and member is not None:
            cl.update_peer_urls(cc.node_id, member.get("peerURLs", []))
            transport.update_peer(cc.node_id, member.get("peerURLs", []))

    async def _stop_after_removal(self) -> None:
        """A removed leader first hands leadership to a caught-up voter (the
        Raft core does that once the removal is applied), then stops."""
        s = self.s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * s.cfg.election_timeout / 1000.0
        while s.raft is not None and s.raft.is_leader and loop.time() < deadline:
            await asyncio.sleep(s.cfg.heartbeat_interval / 1000.0)
        s.on_removed()

    # ---- proposing ------------------------------------------------------------------------
    def conf_change(self, kind: str, node_id: int, member: Member | None,
                    req_id: int) -> ConfChange:
        ctx = conf_change_context(member.to_json() if member else b"{}", req_id)
        return ConfChange(_CC_TYPES[kind], node_id, ctx)

    async def member_add(self, urls: list[str], is_learner: bool) -> pb.MemberAddResponse:
        s = self.s
        await s.gate.check_admin()  # etcd's checkMembershipOperationPermission
        urls = check_peer_urls(urls)
        for u in urls:
            if s.cluster.peer_url_owner(u) is not None:
                raise errors.PEER_URL_EXIST()
        if is_learner and len(s.cluster.learners()) >= MAX_LEARNERS:
            raise errors.TOO_MANY_LEARNERS()
        if s.cfg.strict_reconfig_check and not is_learner:
            self._may_add_voter()
        mid = compute_member_id(urls, "", int(time.time()))
        m = Member(mid, "", urls, (), is_learner)
        members = await s.propose_conf_change("add_learner" if is_learner else "add", mid, m)
        resp = pb.MemberAddResponse(member=pb.Member(ID=mid, peerURLs=urls, isLearner=is_learner),
                                    members=members)
        s.header(resp.header)
        return resp

    def _may_add_voter(self) -> None:
        cl = self.s.cluster
        voters = cl.voters()
        started = sum(1 for i in voters if cl.members[i].name)
        if started < (len(voters) + 1) // 2 + 1:
            raise errors.MEMBER_NOT_ENOUGH_STARTED()
        if not self._connected_since(voters, len(voters)):
            raise errors.UNHEALTHY()

    def _connected_since(self, voters, need: int) -> bool:
        """At least ``need`` of ``voters`` (counting this member) have had a
        stream from us for HEALTH_INTERVAL seconds."""
        s = self.s
        t = s.transport
        now = asyncio.get_running_loop().time()
        n = 0
        for i in voters:
            if i == s.member_id:
                n += 1
            elif t.is_active(i) and now - t.active_since.get(i, now) >= HEALTH_INTERVAL:
                n += 1
        return n >= need

    async def member_remove(self, mid: int) -> pb.MemberRemoveResponse:
        s = self.s
        await s.gate.check_admin()
        m = s.cluster.members.get(mid)
        if m is None:
            raise errors.MEMBER_NOT_FOUND()
        if s.cfg.strict_reconfig_check and not m.is_learner:
            self._may_remove_voter(mid)
        resp = pb.MemberRemoveResponse(members=await s.propose_conf_change("remove", mid, None))
        s.header(resp.header)
        return resp

    def _may_remove_voter(self, mid: int) -> None:
        s = self.s
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

    async def member_update(self, mid: int, urls: list[str]) -> pb.MemberUpdateResponse:
        s = self.s
        await s.gate.check_admin()
        m = s.cluster.members.get(mid)
        if m is None:
            raise errors.MEMBER_NOT_FOUND()
        urls = check_peer_urls(urls)
        for u in urls:
            owner = s.cluster.peer_url_owner(u)
            if owner is not None and owner != mid:
                raise errors.PEER_URL_EXIST()
        upd = Member(m.id, m.name, urls, m.client_urls, m.is_learner)
        resp = pb.MemberUpdateResponse(members=await s.propose_conf_change("update", m.id, upd))
        s.header(resp.header)
        return resp

    async def member_promote(self, request: pb.MemberPromoteRequest) -> pb.MemberPromoteResponse:
        """Promote a learner; a follower forwards the request to the leader
        (and answers the leader's response)."""
        s = self.s
        await s.gate.check_admin()
        m = s.cluster.members.get(request.ID)
        if m is None:
            raise errors.MEMBER_NOT_FOUND()
        if not m.is_learner:
            raise errors.MEMBER_NOT_LEARNER()
        if not s.raft.is_leader:
            return await s.forwarder.forward("Cluster", "MemberPromote", request)
        st = s.raft.status()
        pr = st.progress.get(m.id)
        leader_match = st.progress[s.member_id].match if s.member_id in st.progress else 0
        if pr is None or leader_match == 0 or pr.match < leader_match * 0.9:
            raise errors.LEARNER_NOT_READY()
        promoted = Member(m.id, m.name, m.peer_urls, m.client_urls, False)
        resp = pb.MemberPromoteResponse(members=await s.propose_conf_change("add", m.id, promoted))
        s.header(resp.header)
        return resp

    # ---- publishing this member's attributes ------------------------------------------------
    async def publish(self) -> None:
        """Publish this member's name and client URLs through the log."""
        s = self.s
        while not s.stopped:
            try:
                attrs = MemberAttrSetRequest(member_id=s.member_id, name=s.cfg.name,
                                             client_urls=s.cfg.advertise_client_urls)
                await s.propose_request("member_attr", attrs)
                log.info("published local member to cluster through raft; name=%s client-urls=%s",
                         s.cfg.name, ",".join(s.cfg.advertise_client_urls))
                return
            except errors.EtcdError as exc:
                log.debug("publish failed (%s); retrying", exc.message)
                await asyncio.sleep(PUBLISH_RETRY)
