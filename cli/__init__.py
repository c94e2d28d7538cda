"""pyetcdctl: the companion ctl (etcdctl's commands and output formats).
Talks to members through pyetcd.client and the gRPC stubs only; the offline
snapshot commands (status, restore) use pyetcd.offline."""
