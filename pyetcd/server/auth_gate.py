"""The auth gate: who is asking, and may they (etcd's ``AuthInfoFromCtx``,
``doSerialize`` and the checks ``v3_server.go`` runs before proposing).

The API layer sets the request's credentials (token metadata and the CN of
a verified client certificate) in :data:`pyetcd.auth.store.CREDENTIALS`;
the gate turns them into an :class:`AuthInfo` and checks locally served
requests with :mod:`pyetcd.auth.requests`.  Replicated requests are checked
again on every member's apply path (the auth applier).

A simple token is ``<prefix>.<raft index>``: it is valid on a member once
the Authenticate entry that made it is applied there, so the gate waits for
that index (etcd's ``isValidSimpleToken``).
"""
from __future__ import annotations

import asyncio
import logging

from pyetcd import errors
from pyetcd.auth import requests as checks
from pyetcd.auth.store import (CREDENTIALS, AuthInfo, check_password, hash_password,
                               new_token_prefix)
from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.pb.pyetcdpb.internal_pb2 import InternalRequest

log = logging.getLogger("pyetcd.auth")

TOKEN_POLL = 0.005


class AuthGate:
    """``server``: the member (its current ``auth`` and ``lessor`` stores,
    ``applied_index``, ``request_timeout`` and ``stopped``)."""

    def __init__(self, server):
        self.s = server

    @property
    def enabled(self) -> bool:
        return self.s.auth.enabled

    async def auth_info(self) -> AuthInfo | None:
        """The user of the request being served: from its token, else from
        the CN of its verified client certificate; None when auth is off or
        the request carries neither."""
        auth = self.s.auth
        if not auth.enabled:
            return None
        creds = CREDENTIALS.get()
        if creds is None:
            return None
        if creds.token is not None:
            ai = await self._token_info(creds.token)
            if ai is None:
                log.warning("invalid auth token")
                raise errors.INVALID_AUTH_TOKEN()
            return ai
        if creds.cn:
            return AuthInfo(creds.cn, auth.revision)
        return None

    async def _token_info(self, token: str) -> AuthInfo | None:
        parts = token.split(".")
        if len(parts) != 2 or not parts[1].isdigit():
            return None
        index = int(parts[1])
        s = self.s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.request_timeout
        while s.applied_index < index:
            if loop.time() > deadline or s.stopped:
                return None
            await asyncio.sleep(TOKEN_POLL)
        return s.auth.info_from_token(token)

    async def check(self, kind: str, request) -> AuthInfo | None:
        """Check a locally served request (a read) of ``kind`` (its
        InternalRequest field name) for the request's user; returns the user
        (None with auth off), for :meth:`check_revision` after the read."""
        s = self.s
        if not s.auth.enabled:
            return None
        ai = await self.auth_info()
        checks.check_request(s.auth, ai if ai is not None else AuthInfo("", 0), s.lessor, kind,
                             request)
        return ai

    def check_revision(self, ai: AuthInfo | None) -> None:
        """doSerialize, second half: the auth store changed while reading."""
        if ai is not None and ai.revision and ai.revision != self.s.auth.revision:
            raise errors.AUTH_OLD_REVISION()

    async def require_auth_info(self) -> AuthInfo | None:
        if not self.s.auth.enabled:
            return None
        ai = await self.auth_info()
        if ai is None:
            raise errors.USER_EMPTY()
        return ai

    async def check_admin(self) -> None:
        """etcd's IsAdminPermitted on the request's user."""
        if self.s.auth.enabled:
            self.s.auth.is_admin_permitted(await self.auth_info())

    async def check_lease_keys(self, lease_id: int, read: bool) -> None:
        """etcd's checkLeaseTimeToLive (read) and checkLeaseRenew (write):
        admin, or permission on every attached key.  (LeaseGrant and
        LeaseLeases are unchecked, as in etcd 3.5.1: verified against it.)"""
        s = self.s
        if not s.auth.enabled:
            return
        rev = s.auth.revision
        ai = await self.require_auth_info()
        try:
            s.auth.is_admin_permitted(ai)
            return
        except errors.EtcdError:
            pass
        for key in checks.lease_keys(s.lessor, lease_id):
            if read:
                s.auth.is_range_permitted(ai, key, b"")
            else:
                s.auth.is_put_permitted(ai, key)
        if not read and rev != s.auth.revision:
            raise errors.AUTH_OLD_REVISION()

    async def header_user(self) -> AuthInfo | None:
        """The user a proposal made now carries in its header."""
        if not self.s.auth.enabled:
            return None
        return await self.auth_info()

    async def request(self, kind: str, request):
        """Propose an auth management request.  Passwords are hashed here, on
        the proposing member, off the event loop; the log carries only the
        bcrypt hash."""
        s = self.s
        if (kind == "auth_user_add" and not request.options.no_password) or \
                (kind == "auth_user_change_password" and request.password):
            request.hashedPassword = await asyncio.get_running_loop().run_in_executor(
                None, hash_password, request.password, s.auth.bcrypt_cost)
            request.password = ""
        return await s.propose_request(kind, request)

    async def authenticate(self, name: str, password: str) -> pb.AuthenticateResponse:
        """Check the password here, then assign a token through the log (no
        password in it); again when the auth store changed meanwhile."""
        s = self.s
        await s.linearizable_read()
        while True:
            rev = await self.verify_password(name, password)
            req = InternalRequest()
            req.authenticate.name = name
            req.authenticate.simple_token = new_token_prefix()
            resp = await s.propose(req)
            if rev == s.auth.revision:
                s.header(resp.header)
                return resp

    async def verify_password(self, name: str, password: str) -> int:
        """The proposing member's check of an Authenticate (bcrypt, off the
        event loop); returns the auth revision it was checked at."""
        hashed, rev = self.s.auth.password_of(name)
        ok = await asyncio.get_running_loop().run_in_executor(None, check_password, hashed, password)
        if not ok:
            log.info("invalid password for user %s", name)
            raise errors.AUTH_FAILED()
        return rev
