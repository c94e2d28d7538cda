"""Cluster membership below the server: who the members are and how they are
named and stored.

- :mod:`.member`: a member, etcd's member and cluster id formulas,
  ``--initial-cluster`` parsing, the conf-change context a membership change
  carries through the log;
- :mod:`.store`: the applied member list, kept in the backend's ``members``,
  ``members_removed`` and ``cluster`` buckets.

May import pyetcd.storage (the schema and the backend) and pyetcd.pb.  The
server's bootstrap and the offline tools (restore, imports) both use it, so
every path computes the same ids.
"""
from .member import (Member, MembershipError, compute_cluster_id, compute_member_id,
                     conf_change_context, parse_conf_change_context, parse_initial_cluster)
from .store import Cluster

__all__ = ["Cluster", "Member", "MembershipError", "compute_cluster_id", "compute_member_id",
           "conf_change_context", "parse_conf_change_context", "parse_initial_cluster"]
