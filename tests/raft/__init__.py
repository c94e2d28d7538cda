"""Tests of the Raft consensus core (pyetcd.raft)."""
