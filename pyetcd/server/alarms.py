"""Cluster alarms (NOSPACE, CORRUPT), replicated through the apply path and
persisted in the backend's ``alarm`` bucket (key: the serialized
AlarmMember, as etcd stores it)."""
from __future__ import annotations

from pyetcd.pb.etcdserverpb import rpc_pb2 as pb
from pyetcd.storage import schema


class AlarmStore:
    def __init__(self, backend):
        self.backend = backend
        self.active: dict[tuple[int, int], pb.AlarmMember] = {}
        for k, _ in backend.iterate(schema.ALARM):
            m = pb.AlarmMember.FromString(k)
            self.active[(m.memberID, m.alarm)] = m

    def get(self, alarm: int = pb.NONE) -> list[pb.AlarmMember]:
        return [m for (mid, a), m in sorted(self.active.items()) if alarm == pb.NONE or a == alarm]

    def activate(self, member_id: int, alarm: int) -> pb.AlarmMember | None:
        if (member_id, alarm) in self.active:
            return None
        m = pb.AlarmMember(memberID=member_id, alarm=alarm)
        self.active[(member_id, alarm)] = m
        self.backend.put(schema.ALARM, m.SerializeToString(), b"")
        return m

    def deactivate(self, member_id: int, alarm: int) -> pb.AlarmMember | None:
        m = self.active.pop((member_id, alarm), None)
        if m is not None:
            self.backend.delete(schema.ALARM, m.SerializeToString())
        return m

    def has(self, alarm: int) -> bool:
        return any(a == alarm for (_, a) in self.active)
