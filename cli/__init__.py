"""pyetcdctl: the companion ctl (etcdctl's commands and output formats).
Imports only pyetcd.client and pyetcd.pb, plus the storage layer for the
offline snapshot tools (status, restore)."""
