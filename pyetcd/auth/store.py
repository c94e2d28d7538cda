"""The auth store: users, roles, permissions, the enabled flag, the auth
revision and the member's simple tokens (etcd's ``server/auth``).

State lives in the backend buckets etcd uses -- ``auth`` (``authEnabled``:
one byte, ``authRevision``: 8 bytes big-endian), ``authUsers`` (name ->
``authpb.User``), ``authRoles`` (name -> ``authpb.Role``) -- and is mirrored
in memory.  Every mutation arrives through the Raft log and is applied on
every member in log order, so nothing here reads the clock except the token
TTL keeper, which is member-local exactly as in etcd (a token is assigned on
every member when its Authenticate entry is applied; its TTL is kept and
refreshed by each member on its own).

Passwords are bcrypt hashes (the ``bcrypt`` package; etcd stores bcrypt
too, so hashes in an etcd snapshot verify here and vice versa).  Hashing
happens on the proposing member (``hash_password``), never in the apply path.

Rules (etcd 3.5):
- AuthEnable needs user ``root`` with role ``root``;
- while enabled, ``root`` cannot be deleted, the ``root`` role cannot be
  deleted, and ``root`` cannot lose the ``root`` role;
- every mutation (but AuthEnable and RoleAdd's cache) bumps the revision;
  a request checked at an older revision fails with ``revision of auth store
  is old``.
"""
from __future__ import annotations

import base64
import bisect
import contextvars
import secrets
import string
import struct
import time
from dataclasses import dataclass

from pyetcd import errors
from pyetcd.pb.authpb import auth_pb2 as authpb
from pyetcd.storage import schema

from .perms import UnifiedPerms

ROOT_USER = "root"
ROOT_ROLE = "root"
_U64 = struct.Struct(">Q")
_LETTERS = string.ascii_lowercase + string.ascii_uppercase
READ, WRITE, READWRITE = authpb.Permission.READ, authpb.Permission.WRITE, authpb.Permission.READWRITE


@dataclass(frozen=True)
class AuthInfo:
    username: str
    revision: int


@dataclass(frozen=True)
class Credentials:
    """What a request presented: a token from the metadata and/or the CN of
    a verified client certificate."""
    token: str | None = None
    cn: str | None = None


# set by the API layer for the duration of one request; read by the server
# when it fills a proposal's header (so every proposal made while serving a
# request -- including the lock/election recipes -- carries its user)
CREDENTIALS: contextvars.ContextVar[Credentials | None] = contextvars.ContextVar(
    "pyetcd_auth_credentials", default=None)


def hash_password(password: str, cost: int) -> str:
    """bcrypt hash, base64 (the form carried in AuthUserAddRequest.hashedPassword)."""
    import bcrypt
    cost = cost if 4 <= cost <= 31 else 10
    h = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost, prefix=b"2a"))
    return base64.b64encode(h).decode()


def check_password(hashed: bytes, password: str) -> bool:
    import bcrypt
    try:
        return bcrypt.checkpw(password.encode(), hashed)
    except ValueError:
        return False


def is_valid_permission_range(key: bytes, end: bytes) -> bool:
    if not key:
        return False
    if not end:
        return True
    return key < end or end == b"\x00"


class TokenKeeper:
    """Member-local simple tokens: token -> user, each with a TTL refreshed
    on use (etcd's simpleTokenTTLKeeper)."""

    def __init__(self, ttl: float, clock=time.monotonic):
        self.ttl = ttl if ttl > 0 else 300.0
        self.clock = clock
        self.tokens: dict[str, tuple[str, float]] = {}

    def assign(self, username: str, token: str) -> None:
        self.tokens[token] = (username, self.clock() + self.ttl)

    def lookup(self, token: str) -> str | None:
        entry = self.tokens.get(token)
        if entry is None:
            return None
        now = self.clock()
        if entry[1] <= now:
            del self.tokens[token]
            return None
        self.tokens[token] = (entry[0], now + self.ttl)
        return entry[0]

    def invalidate_user(self, username: str) -> None:
        for tok in [t for t, (u, _) in self.tokens.items() if u == username]:
            del self.tokens[tok]

    def clear(self) -> None:
        self.tokens.clear()


def new_token_prefix() -> str:
    return "".join(secrets.choice(_LETTERS) for _ in range(16))


class AuthStore:
    def __init__(self, backend, token_ttl: float = 300.0, bcrypt_cost: int = 10, clock=time.monotonic):
        self.be = backend
        self.bcrypt_cost = bcrypt_cost
        self.tokens = TokenKeeper(token_ttl, clock)
        self.users: dict[str, authpb.User] = {}
        self.roles: dict[str, authpb.Role] = {}
        self.perm_cache: dict[str, UnifiedPerms] = {}
        self.enabled = backend.get(schema.AUTH, schema.AUTH_ENABLED) == b"\x01"
        raw = backend.get(schema.AUTH, schema.AUTH_REVISION)
        self.revision = _U64.unpack(raw)[0] if raw and len(raw) == 8 else 0
        for name, val in backend.iterate(schema.AUTH_USERS):
            self.users[name.decode()] = authpb.User.FromString(val)
        for name, val in backend.iterate(schema.AUTH_ROLES):
            self.roles[name.decode()] = authpb.Role.FromString(val)
        if self.revision == 0:
            self._commit_revision()
        self._refresh_cache()

    # ---- persistence ------------------------------------------------------------------
    def _commit_revision(self) -> None:
        self.revision += 1
        self.be.put(schema.AUTH, schema.AUTH_REVISION, _U64.pack(self.revision))

    def _put_user(self, u: authpb.User) -> None:
        name = u.name.decode()
        self.users[name] = u
        self.be.put(schema.AUTH_USERS, u.name, u.SerializeToString())

    def _del_user(self, name: str) -> None:
        self.users.pop(name, None)
        self.be.delete(schema.AUTH_USERS, name.encode())

    def _put_role(self, r: authpb.Role) -> None:
        self.roles[r.name.decode()] = r
        self.be.put(schema.AUTH_ROLES, r.name, r.SerializeToString())

    def _refresh_cache(self) -> None:
        cache = {}
        for name, u in self.users.items():
            perms = []
            for rname in u.roles:
                role = self.roles.get(rname)
                if role is not None:
                    perms.extend(role.keyPermission)
            cache[name] = UnifiedPerms(perms)
        self.perm_cache = cache

    def _mutated(self) -> None:
        self._commit_revision()
        self._refresh_cache()

    # ---- enable / disable ------------------------------------------------------------------
    def auth_enable(self) -> None:
        if self.enabled:
            return
        u = self.users.get(ROOT_USER)
        if u is None:
            raise errors.ROOT_USER_NOT_EXIST()
        if not has_root_role(u):
            raise errors.ROOT_ROLE_NOT_EXIST()
        self.be.put(schema.AUTH, schema.AUTH_ENABLED, b"\x01")
        self.enabled = True
        self._refresh_cache()

    def auth_disable(self) -> None:
        if not self.enabled:
            return
        self.be.put(schema.AUTH, schema.AUTH_ENABLED, b"\x00")
        self._commit_revision()
        self.enabled = False
        self.tokens.clear()

    # ---- authentication -------------------------------------------------------------------
    def password_of(self, name: str) -> tuple[bytes, int]:
        """(bcrypt hash, auth revision) of the user a client authenticates as;
        etcd's errors when auth is off or the user cannot log in."""
        if not self.enabled:
            raise errors.AUTH_NOT_ENABLED()
        u = self.users.get(name)
        if u is None or u.options.no_password:
            raise errors.AUTH_FAILED()
        return u.password, self.revision

    def authenticate(self, name: str, prefix: str, index: int) -> str:
        """Apply an Authenticate entry: assign ``prefix.index`` to the user."""
        if not self.enabled:
            raise errors.AUTH_NOT_ENABLED()
        u = self.users.get(name)
        if u is None or u.options.no_password:
            raise errors.AUTH_FAILED()
        token = f"{prefix}.{index}"
        self.tokens.assign(name, token)
        return token

    def info_from_token(self, token: str) -> AuthInfo | None:
        name = self.tokens.lookup(token)
        return AuthInfo(name, self.revision) if name is not None else None

    # ---- users --------------------------------------------------------------------------
    def user_add(self, r) -> None:
        if not r.name:
            raise errors.USER_EMPTY()
        if r.name in self.users:
            raise errors.USER_ALREADY_EXIST()
        u = authpb.User(name=r.name.encode())
        u.options.no_password = r.options.no_password
        if not r.options.no_password:
            u.password = self._select_password(r.password, r.hashedPassword)
        self._put_user(u)
        self._mutated()

    def _select_password(self, password: str, hashed: str) -> bytes:
        if password and not hashed:  # an entry proposed without a hash
            return base64.b64decode(hash_password(password, self.bcrypt_cost))
        try:
            return base64.b64decode(hashed, validate=True)
        except ValueError:
            raise errors.AUTH_FAILED() from None

    def user_delete(self, name: str) -> None:
        if self.enabled and name == ROOT_USER:
            raise errors.INVALID_AUTH_MGMT()
        if name not in self.users:
            raise errors.USER_NOT_FOUND()
        self._del_user(name)
        self._mutated()
        self.tokens.invalidate_user(name)

    def user_change_password(self, r) -> None:
        u = self.users.get(r.name)
        if u is None:
            raise errors.USER_NOT_FOUND()
        nu = authpb.User()
        nu.CopyFrom(u)
        if not u.options.no_password:
            nu.password = self._select_password(r.password, r.hashedPassword)
        else:
            nu.ClearField("password")
        self._put_user(nu)
        self._mutated()
        self.tokens.invalidate_user(r.name)

    def user_grant_role(self, user: str, role: str) -> None:
        u = self.users.get(user)
        if u is None:
            raise errors.USER_NOT_FOUND()
        if role != ROOT_ROLE and role not in self.roles:
            raise errors.ROLE_NOT_FOUND()
        roles = list(u.roles)
        i = bisect.bisect_left(roles, role)
        if i < len(roles) and roles[i] == role:
            return
        roles.insert(i, role)
        self._set_roles(u, roles)

    def user_get(self, name: str) -> list[str]:
        u = self.users.get(name)
        if u is None:
            raise errors.USER_NOT_FOUND()
        return list(u.roles)

    def user_list(self) -> list[str]:
        return sorted(self.users)

    def user_revoke_role(self, name: str, role: str) -> None:
        if self.enabled and name == ROOT_USER and role == ROOT_ROLE:
            raise errors.INVALID_AUTH_MGMT()
        u = self.users.get(name)
        if u is None:
            raise errors.USER_NOT_FOUND()
        if role not in u.roles:
            raise errors.ROLE_NOT_GRANTED()
        self._set_roles(u, [r for r in u.roles if r != role])

    def _set_roles(self, u: authpb.User, roles: list[str]) -> None:
        nu = authpb.User()
        nu.CopyFrom(u)
        nu.ClearField("roles")
        nu.roles.extend(roles)
        self._put_user(nu)
        self._mutated()

    # ---- roles --------------------------------------------------------------------------
    def role_add(self, name: str) -> None:
        if not name:
            raise errors.ROLE_EMPTY()
        if name in self.roles:
            raise errors.ROLE_ALREADY_EXIST()
        self._put_role(authpb.Role(name=name.encode()))
        self._commit_revision()

    def role_get(self, name: str) -> list:
        r = self.roles.get(name)
        if r is None:
            raise errors.ROLE_NOT_FOUND()
        return list(r.keyPermission)

    def role_list(self) -> list[str]:
        return sorted(self.roles)

    def role_delete(self, name: str) -> None:
        if self.enabled and name == ROOT_ROLE:
            raise errors.INVALID_AUTH_MGMT()
        if name not in self.roles:
            raise errors.ROLE_NOT_FOUND()
        del self.roles[name]
        self.be.delete(schema.AUTH_ROLES, name.encode())
        for u in list(self.users.values()):
            if name in u.roles:
                nu = authpb.User()
                nu.CopyFrom(u)
                nu.ClearField("roles")
                nu.roles.extend(r for r in u.roles if r != name)
                self._put_user(nu)
        self._mutated()

    def role_grant_permission(self, name: str, perm) -> None:
        if not is_valid_permission_range(perm.key, perm.range_end):
            raise errors.INVALID_AUTH_MGMT()
        r = self.roles.get(name)
        if r is None:
            raise errors.ROLE_NOT_FOUND()
        nr = authpb.Role()
        nr.CopyFrom(r)
        for p in nr.keyPermission:
            if p.key == perm.key and p.range_end == perm.range_end:
                p.permType = perm.permType
                break
        else:
            perms = list(nr.keyPermission) + [authpb.Permission(
                key=perm.key, range_end=perm.range_end, permType=perm.permType)]
            perms.sort(key=lambda p: p.key)  # stable, like Go's sort on these inputs
            nr.ClearField("keyPermission")
            nr.keyPermission.extend(perms)
        self._put_role(nr)
        self._mutated()

    def role_revoke_permission(self, name: str, key: bytes, end: bytes) -> None:
        r = self.roles.get(name)
        if r is None:
            raise errors.ROLE_NOT_FOUND()
        keep = [p for p in r.keyPermission if not (p.key == key and p.range_end == end)]
        if len(keep) == len(r.keyPermission):
            raise errors.PERMISSION_NOT_GRANTED()
        nr = authpb.Role(name=r.name)
        nr.keyPermission.extend(keep)
        self._put_role(nr)
        self._mutated()

    # ---- permission checks ----------------------------------------------------------------
    def is_op_permitted(self, ai: AuthInfo | None, key: bytes, end: bytes, perm: int) -> None:
        if not self.enabled:
            return
        if ai is None or ai.revision == 0:
            raise errors.USER_EMPTY()
        if ai.revision < self.revision:
            raise errors.AUTH_OLD_REVISION()
        u = self.users.get(ai.username)
        if u is None:
            raise errors.PERMISSION_DENIED()
        if has_root_role(u):
            return
        cache = self.perm_cache.get(ai.username)
        if cache is not None and cache.permitted(key, end, perm):
            return
        raise errors.PERMISSION_DENIED()

    def is_put_permitted(self, ai, key: bytes) -> None:
        self.is_op_permitted(ai, key, b"", WRITE)

    def is_range_permitted(self, ai, key: bytes, end: bytes) -> None:
        self.is_op_permitted(ai, key, end, READ)

    def is_delete_range_permitted(self, ai, key: bytes, end: bytes) -> None:
        self.is_op_permitted(ai, key, end, WRITE)

    def is_admin_permitted(self, ai: AuthInfo | None) -> None:
        if not self.enabled:
            return
        if ai is None or not ai.username:
            raise errors.USER_EMPTY()
        u = self.users.get(ai.username)
        if u is None:
            raise errors.USER_NOT_FOUND()
        if not has_root_role(u):
            raise errors.PERMISSION_DENIED()

    def has_role(self, user: str, role: str) -> bool:
        u = self.users.get(user)
        return u is not None and role in u.roles


def has_root_role(u: authpb.User) -> bool:
    return ROOT_ROLE in u.roles
