"""Tests of pyetcd.storage: WAL codec, WAL, snapshots, failpoints."""
