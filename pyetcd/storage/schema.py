"""The backend's schema: every bucket and every fixed key, named once.

The names are etcd's (``server/storage/schema``), so a pyetcd backend and an
etcd bbolt file map onto each other bucket by bucket (snapshots, restores,
data dirs taken over from etcd).  pyetcd adds one member-local key,
``meta/local_member_id``: which member of the stored member list this data
dir belongs to.  Member-local keys are not replicated state: they are left
out of snapshots and of the backend hash.
"""
from __future__ import annotations

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


def member_key(member_id: int) -> bytes:
    """The key of a member in MEMBERS and MEMBERS_REMOVED."""
    return b"%016x" % member_id


def is_member_local(bucket: str, key: bytes) -> bool:
    """Not part of the replicated state (left out of snapshots)."""
    return bucket == META and key == LOCAL_MEMBER_ID


def is_hash_ignored(bucket: str, key: bytes) -> bool:
    """Left out of the backend hash (etcd's DefaultIgnores, plus member-local keys)."""
    return bucket == META and key in (CONSISTENT_INDEX, TERM, LOCAL_MEMBER_ID)
