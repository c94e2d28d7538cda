"""The backend's schema: every bucket and every fixed key, named once.

The names are etcd's (``server/storage/schema``), so a pyetcd backend and an
etcd bbolt file map onto each other bucket by bucket (snapshots, restores,
data dirs taken over from etcd).  pyetcd adds one member-local key,
``meta/local_member_id``: which member of the stored member list this data
dir belongs to.  Member-local keys are not replicated state: they are left
out of snapshots and of the backend hash.
"""
from __future__ import annotations

import hashlib

# buckets
KEY = "key"                    # revision (17 bytes: main, '_', sub[, 't']) -> mvccpb.KeyValue
META = "meta"                  # the keys below
LEASE = "lease"                # lease id (8 bytes) -> leasepb.Lease
MEMBERS = "members"            # member id (16 hex digits) -> member JSON
MEMBERS_REMOVED = "members_removed"  # member id (16 hex digits) -> b"removed"
CLUSTER = "cluster"            # CLUSTER_ID (and etcd's clusterVersion when imported)
ALARM = "alarm"                # serialized AlarmMember -> b""
AUTH = "auth"                  # AUTH_ENABLED, AUTH_REVISION
AUTH_USERS = "authUsers"       # user name -> authpb.User
AUTH_ROLES = "authRoles"       # role name -> authpb.Role

BUCKETS = (KEY, META, LEASE, MEMBERS, MEMBERS_REMOVED, CLUSTER, ALARM, AUTH, AUTH_USERS,
           AUTH_ROLES)

# pyetcd's derived databases: indexes of the buckets above, written in the same
# transactions as the data they index (so restart reads them instead of
# rebuilding an in-memory index, as etcd does, from the key bucket).  They are
# not etcd buckets: never exported to an etcd snapshot nor hashed; a backend
# without INDEX_FORMAT in LOCAL (restored, imported from etcd, older pyetcd)
# has them rebuilt from the key bucket when the MVCC store opens it.
KEY_INDEX = "pyetcd_key_index"  # ikey(key) -> its newest revision, create, version, lease
KEY_PREV = "pyetcd_key_prev"    # REV12 of a key-bucket record -> REV12 + p|t of the key's previous
LEASE_KEYS = "pyetcd_lease_keys"  # lease id (8 bytes) + ikey(key) -> key
LOCAL = "pyetcd_local"          # INDEX_FORMAT
DERIVED = (KEY_INDEX, KEY_PREV, LEASE_KEYS, LOCAL)
ALL_DBS = BUCKETS + DERIVED

# meta bucket
CONSISTENT_INDEX = b"consistent_index"     # the last applied Raft index (8 bytes)
TERM = b"term"                             # its term (8 bytes)
SCHEDULED_COMPACT_REV = b"scheduledCompactRev"
FINISHED_COMPACT_REV = b"finishedCompactRev"
LOCAL_MEMBER_ID = b"local_member_id"       # pyetcd's: this data dir's member id (8 bytes)

# cluster bucket
CLUSTER_ID = b"clusterID"

# auth bucket
AUTH_ENABLED = b"authEnabled"
AUTH_REVISION = b"authRevision"

REMOVED = b"removed"

# LOCAL: the derived databases' format; absent means "rebuild them"
INDEX_FORMAT = b"index_format"
INDEX_FORMAT_VERSION = b"2"

# ---- the index key encoding --------------------------------------------------------------
# LMDB keys are at most 511 bytes and etcd keys may be far longer, so a key is
# indexed by an order-preserving, prefix-free encoding: its bytes with 0x00
# escaped as 00 ff, then 00 01.  A key whose escaped form is longer than
# SHORT_IKEY bytes is encoded by the longest prefix whose escaped form fits,
# then 00 02 and a 16-byte hash of the key: the long keys sharing that prefix
# form one group, sorted among the other keys exactly where they belong, but
# ordered by hash inside the group (readers sort a group by key, which they
# read from the key bucket).  Short keys cover keys up to SHORT_IKEY bytes
# without 0x00 (Kubernetes' are well below); the bound keeps the index small.
SHORT_IKEY = 128
_GROUP, _GROUP_END, _HASH = b"\x00\x02", b"\x00\x03", 16


def _escaped(key: bytes) -> bytes:
    return key.replace(b"\x00", b"\x00\xff")


def _group_prefix(e: bytes) -> bytes:
    """The longest whole-symbol prefix of an escaped key within SHORT_IKEY bytes."""
    return e[:SHORT_IKEY - 1] if e[SHORT_IKEY - 1] == 0 else e[:SHORT_IKEY]


def ikey(key: bytes) -> bytes:
    # escaping more than SHORT_IKEY + 1 bytes never matters (and costs: keys
    # padded with zeros are common, etcd's benchmarks write them)
    e = _escaped(key[:SHORT_IKEY + 1])
    if len(e) <= SHORT_IKEY and len(key) <= SHORT_IKEY:
        return e + b"\x00\x01"
    return (_group_prefix(e) + _GROUP
            + hashlib.blake2b(key, digest_size=_HASH).digest())


def ikey_is_long(ik: bytes) -> bool:
    return ik[-2:] != b"\x00\x01"


def ikey_group(ik: bytes) -> bytes:
    """The group prefix of a long key's ikey."""
    return ik[:-_HASH]


def ikey_decode(ik: bytes) -> bytes:
    """The key of a short key's ikey."""
    return ik[:-2].replace(b"\x00\xff", b"\x00")


def ikey_lower(key: bytes) -> bytes:
    """The smallest ikey of a key >= ``key`` (long keys of its group still need
    comparing by the key itself)."""
    e = _escaped(key[:SHORT_IKEY + 1])
    if len(e) <= SHORT_IKEY and len(key) <= SHORT_IKEY:
        return e + b"\x00\x01"
    return _group_prefix(e) + _GROUP


def ikey_upper(end: bytes) -> bytes:
    """An ikey bound above every key < ``end`` (exact for a short ``end``)."""
    e = _escaped(end[:SHORT_IKEY + 1])
    if len(e) <= SHORT_IKEY and len(end) <= SHORT_IKEY:
        return e + b"\x00\x01"
    return _group_prefix(e) + _GROUP_END


def member_key(member_id: int) -> bytes:
    """The key of a member in MEMBERS and MEMBERS_REMOVED."""
    return b"%016x" % member_id


def is_member_local(bucket: str, key: bytes) -> bool:
    """Not part of the replicated state (left out of snapshots)."""
    return bucket == META and key == LOCAL_MEMBER_ID


def is_hash_ignored(bucket: str, key: bytes) -> bool:
    """Left out of the backend hash (etcd's DefaultIgnores, plus member-local keys)."""
    return bucket == META and key in (CONSISTENT_INDEX, TERM, LOCAL_MEMBER_ID)


def lease_ikey(lease_id: int, ik: bytes) -> bytes:
    """The LEASE_KEYS key of the key whose ikey is ``ik``, attached to ``lease_id``."""
    return lease_id.to_bytes(8, "big", signed=True) + ik


def lease_prefix(lease_id: int) -> tuple[bytes, bytes]:
    """The LEASE_KEYS range of ``lease_id``'s keys."""
    return (lease_id.to_bytes(8, "big", signed=True),
            (lease_id + 1).to_bytes(8, "big", signed=True))
