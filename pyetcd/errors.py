"""etcd's client-visible errors: gRPC code plus the exact message text.

etcd's Go client maps errors by their message string, and retries by code,
so both must match etcd's ``api/v3rpc/rpctypes`` byte for byte.  Every layer
raises :class:`EtcdError` with one of the constants below; the gRPC layer
turns it into a status with that code and message.
"""
from __future__ import annotations


class EtcdError(Exception):
    """An error with etcd's gRPC status code name and message."""

    __slots__ = ("code", "message")

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __call__(self) -> "EtcdError":
        """A fresh instance (raise ERR() to keep tracebacks separate)."""
        return EtcdError(self.code, self.message)

    def __eq__(self, other) -> bool:
        return isinstance(other, EtcdError) and other.message == self.message

    def __hash__(self) -> int:
        return hash(self.message)

    def __repr__(self) -> str:
        return f"EtcdError({self.code}, {self.message!r})"


_e = EtcdError

EMPTY_KEY = _e("InvalidArgument", "etcdserver: key is not provided")
KEY_NOT_FOUND = _e("InvalidArgument", "etcdserver: key not found")
VALUE_PROVIDED = _e("InvalidArgument", "etcdserver: value is provided")
LEASE_PROVIDED = _e("InvalidArgument", "etcdserver: lease is provided")
TOO_MANY_OPS = _e("InvalidArgument", "etcdserver: too many operations in txn request")
DUPLICATE_KEY = _e("InvalidArgument", "etcdserver: duplicate key given in txn request")
COMPACTED = _e("OutOfRange", "etcdserver: mvcc: required revision has been compacted")
FUTURE_REV = _e("OutOfRange", "etcdserver: mvcc: required revision is a future revision")
NO_SPACE = _e("ResourceExhausted", "etcdserver: mvcc: database space exceeded")
LEASE_NOT_FOUND = _e("NotFound", "etcdserver: requested lease not found")
LEASE_EXIST = _e("FailedPrecondition", "etcdserver: lease already exists")
LEASE_TTL_TOO_LARGE = _e("OutOfRange", "etcdserver: too large lease TTL")
WATCH_CANCELED = _e("Canceled", "etcdserver: watch canceled")
MEMBER_EXIST = _e("FailedPrecondition", "etcdserver: member ID already exist")
PEER_URL_EXIST = _e("FailedPrecondition", "etcdserver: Peer URLs already exists")
MEMBER_NOT_ENOUGH_STARTED = _e("FailedPrecondition", "etcdserver: re-configuration failed due to not enough started members")
MEMBER_BAD_URLS = _e("InvalidArgument", "etcdserver: given member URLs are invalid")
MEMBER_NOT_FOUND = _e("NotFound", "etcdserver: member not found")
MEMBER_NOT_LEARNER = _e("FailedPrecondition", "etcdserver: can only promote a learner member")
LEARNER_NOT_READY = _e("FailedPrecondition", "etcdserver: can only promote a learner member which is in sync with leader")
TOO_MANY_LEARNERS = _e("FailedPrecondition", "etcdserver: too many learner members in cluster")
CLUSTER_ID_MISMATCH = _e("FailedPrecondition", "etcdserver: cluster ID mismatch")
REQUEST_TOO_LARGE = _e("InvalidArgument", "etcdserver: request is too large")
TOO_MANY_REQUESTS = _e("ResourceExhausted", "etcdserver: too many requests")
ROOT_USER_NOT_EXIST = _e("FailedPrecondition", "etcdserver: root user does not exist")
ROOT_ROLE_NOT_EXIST = _e("FailedPrecondition", "etcdserver: root user does not have root role")
USER_ALREADY_EXIST = _e("FailedPrecondition", "etcdserver: user name already exists")
USER_EMPTY = _e("InvalidArgument", "etcdserver: user name is empty")
USER_NOT_FOUND = _e("FailedPrecondition", "etcdserver: user name not found")
ROLE_ALREADY_EXIST = _e("FailedPrecondition", "etcdserver: role name already exists")
ROLE_NOT_FOUND = _e("FailedPrecondition", "etcdserver: role name not found")
ROLE_EMPTY = _e("InvalidArgument", "etcdserver: role name is empty")
AUTH_FAILED = _e("InvalidArgument", "etcdserver: authentication failed, invalid user ID or password")
PERMISSION_NOT_GIVEN = _e("InvalidArgument", "etcdserver: permission not given")
PERMISSION_DENIED = _e("PermissionDenied", "etcdserver: permission denied")
ROLE_NOT_GRANTED = _e("FailedPrecondition", "etcdserver: role is not granted to the user")
PERMISSION_NOT_GRANTED = _e("FailedPrecondition", "etcdserver: permission is not granted to the role")
AUTH_NOT_ENABLED = _e("FailedPrecondition", "etcdserver: authentication is not enabled")
INVALID_AUTH_TOKEN = _e("Unauthenticated", "etcdserver: invalid auth token")
INVALID_AUTH_MGMT = _e("InvalidArgument", "etcdserver: invalid auth management")
AUTH_OLD_REVISION = _e("InvalidArgument", "etcdserver: revision of auth store is old")
NO_LEADER = _e("Unavailable", "etcdserver: no leader")
NOT_LEADER = _e("FailedPrecondition", "etcdserver: not leader")
LEADER_CHANGED = _e("Unavailable", "etcdserver: leader changed")
NOT_CAPABLE = _e("Unavailable", "etcdserver: not capable")
STOPPED = _e("Unavailable", "etcdserver: server stopped")
TIMEOUT = _e("Unavailable", "etcdserver: request timed out")
TIMEOUT_DUE_TO_LEADER_FAIL = _e("Unavailable", "etcdserver: request timed out, possibly due to previous leader failure")
TIMEOUT_DUE_TO_CONNECTION_LOST = _e("Unavailable", "etcdserver: request timed out, possibly due to connection lost")
TIMEOUT_WAIT_APPLIED_INDEX = _e("Unavailable", "etcdserver: request timed out, waiting for the applied index took too long")
UNHEALTHY = _e("Unavailable", "etcdserver: unhealthy cluster")
CORRUPT = _e("DataLoss", "etcdserver: corrupt cluster")
BAD_LEADER_TRANSFEREE = _e("FailedPrecondition", "etcdserver: bad leader transferee")
CLUSTER_VERSION_UNAVAILABLE = _e("Unavailable", "etcdserver: cluster version not found during downgrade")
WRONG_DOWNGRADE_VERSION_FORMAT = _e("InvalidArgument", "etcdserver: wrong downgrade target version format")
INVALID_DOWNGRADE_TARGET_VERSION = _e("InvalidArgument", "etcdserver: invalid downgrade target version")
DOWNGRADE_IN_PROCESS = _e("FailedPrecondition", "etcdserver: cluster has a downgrade job in progress")
NO_INFLIGHT_DOWNGRADE = _e("FailedPrecondition", "etcdserver: no inflight downgrade job")
CANCELED = _e("Canceled", "etcdserver: request canceled")
DEADLINE_EXCEEDED = _e("DeadlineExceeded", "etcdserver: context deadline exceeded")
NOT_SUPPORTED_FOR_LEARNER = _e("Unavailable", "etcdserver: rpc not supported for learner")
INVALID_SORT_OPTION = _e("InvalidArgument", "etcdserver: invalid sort option")
