"""pyetcdctl: the companion ctl (etcdctl's commands).  Imports only
pyetcd.client and pyetcd.pb (plus the storage layer for offline snapshot
tools).  Its commands arrive with the snapshot and maintenance issue."""
