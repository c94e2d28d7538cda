"""Data-dir work without a running server (etcdutl's jobs): restoring a
snapshot into a new member's data dir, taking over a data dir written by
real etcd (bbolt) and reading a snapshot's status.

Used by the server's bootstrap (a data dir restored by the real etcdctl or
etcdutl is converted when the member starts on it) and by pyetcdctl.  May
import pyetcd.storage, pyetcd.cluster and pyetcd.pb.
"""
# the status reader belongs to the bbolt format (pyetcd.storage.etcd_snapshot)
from pyetcd.storage.etcd_snapshot import SnapshotStatus
from pyetcd.storage.etcd_snapshot import snapshot_stats as snapshot_status

from .etcd_import import import_etcd_data_dir, is_bbolt
from .restore import RestoreError, restore, verify_snapshot_hash

__all__ = ["RestoreError", "SnapshotStatus", "import_etcd_data_dir", "is_bbolt", "restore",
           "snapshot_status", "verify_snapshot_hash"]
