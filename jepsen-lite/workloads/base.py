"""What every workload shares: client processes at a rate, each with its own
deterministic operation stream (the seed replays it), spread over every
member, recording invocations and completions."""
from __future__ import annotations

import abc
import random
import threading
import time

from ..client import EtcdClient, Indeterminate, Refused
from ..history import FAIL, INFO, OK, Recorder


class Context:
    """What a workload gets: the cluster, the recorder, the run's options."""

    def __init__(self, cluster, recorder: Recorder, seed: int, rate: float, clients: int,
                 deadline: float, timeout: float = 1.0):
        self.cluster = cluster
        self.recorder = recorder
        self.seed = seed
        self.rate = rate
        self.clients = clients
        self.deadline = deadline        # monotonic time the run's traffic stops
        self.timeout = timeout
        self.stop = threading.Event()

    def rng(self, *parts) -> random.Random:
        return random.Random(hash((self.seed,) + parts) & 0xFFFFFFFF)

    def endpoint(self, process: int) -> str:
        eps = self.cluster.endpoints
        return eps[process % len(eps)]

    def running(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.deadline


class Workload(abc.ABC):
    """A workload: ``name``; ``operation(rng, process, state)`` -> (f, value)
    for the next op; ``apply(client, f, value, state)`` -> result (raising
    :class:`Refused` / :class:`Indeterminate`); ``final(ctx)`` after the
    traffic; ``check(ops, ctx_info)`` -> verdict dict."""

    name = "?"
    share = 1.0   # fraction of the run's clients

    def setup(self, ctx: Context) -> None:
        pass

    def final(self, ctx: Context) -> None:
        pass

    def threads(self, ctx: Context, processes: list[int]) -> list[threading.Thread]:
        return [threading.Thread(target=self._worker, args=(ctx, p), daemon=True,
                                 name=f"{self.name}-{p}") for p in processes]

    def _worker(self, ctx: Context, process: int) -> None:
        rng = ctx.rng(self.name, process)
        per_client = max(ctx.rate / max(ctx.clients, 1), 0.1)
        state: dict = {}
        client = EtcdClient(ctx.endpoint(process), ctx.timeout)
        nxt = time.monotonic()
        try:
            while ctx.running():
                f, value = self.operation(rng, process, state)
                self.run_op(ctx, client, process, f, value, state)
                nxt += rng.expovariate(per_client)
                delay = nxt - time.monotonic()
                if delay > 0:
                    ctx.stop.wait(delay)
                else:
                    nxt = time.monotonic()
        finally:
            client.close()

    def run_op(self, ctx: Context, client: EtcdClient, process, f: str, value, state):
        rec = ctx.recorder
        inv = rec.invoke(process, f, value, member=client.endpoint, workload=self.name)
        try:
            result = self.apply(client, f, value, state)
        except Refused as exc:
            rec.complete(inv, FAIL, error=str(exc))
            return None
        except Indeterminate as exc:
            rec.complete(inv, INFO, error=str(exc))
            return None
        if isinstance(result, Failed):
            rec.complete(inv, FAIL, result.value, error=result.why)
            return None
        rec.complete(inv, OK, result)
        return result

    @abc.abstractmethod
    def operation(self, rng, process, state):
        """The next (f, value) of ``process``'s stream."""

    @abc.abstractmethod
    def apply(self, client, f, value, state):
        """Perform one operation; its result (or a :class:`Failed`)."""

    @abc.abstractmethod
    def check(self, ops, info: dict) -> dict:
        """The verdict over the whole history."""


class Failed:
    """An operation that completed and certainly had no effect (a txn whose
    guard failed), with what it observed."""

    def __init__(self, why: str, value=None):
        self.why = why
        self.value = value
