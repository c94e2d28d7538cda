"""The PyPI ``etcd3`` client, unmodified, against pyetcd: watch,
watch_prefix, watch callbacks, leases, locks, replace and transactions
(in a subprocess: its generated code needs the pure-Python protobuf)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import sys, threading, time
import etcd3
host, port = sys.argv[1].split(":")
c = etcd3.client(host=host, port=int(port))

# watch one key
events, cancel = c.watch("/w/key")
def writer():
    time.sleep(0.3)
    c.put("/w/key", "1"); c.put("/w/key", "2"); c.delete("/w/key")
threading.Thread(target=writer).start()
got = []
for ev in events:
    got.append((type(ev).__name__, ev.key, ev.value))
    if len(got) == 3:
        cancel()
assert got == [("PutEvent", b"/w/key", b"1"), ("PutEvent", b"/w/key", b"2"),
               ("DeleteEvent", b"/w/key", b"")], got

# watch a prefix, from a past revision
rev = c.put("/p/a", "x").header.revision
c.put("/p/b", "y")
events, cancel = c.watch_prefix("/p/", start_revision=rev)
seen = []
for ev in events:
    seen.append(ev.key)
    if len(seen) == 2:
        cancel()
assert seen == [b"/p/a", b"/p/b"], seen

# watch with a callback
hits = []
done = threading.Event()
def cb(resp):
    for ev in resp.events:
        hits.append(ev.value)
    if len(hits) >= 2:
        done.set()
wid = c.add_watch_callback("/cb", cb)
c.put("/cb", "one"); c.put("/cb", "two")
assert done.wait(10), hits
c.cancel_watch(wid)
assert hits[:2] == [b"one", b"two"], hits

# leases
lease = c.lease(30)
c.put("/leased", "v", lease=lease)
assert lease.remaining_ttl > 0 and lease.granted_ttl == 30
lease.refresh()
assert [k for k in lease.keys] == [b"/leased"]
lease.revoke()
assert c.get("/leased")[0] is None

# locks (etcd3's own lock protocol: txn + lease)
lk = c.lock("res", ttl=10)
assert lk.acquire(timeout=5)
other = c.lock("res", ttl=10)
assert not other.acquire(timeout=1)
assert lk.is_acquired()
lk.release()
assert other.acquire(timeout=5)
other.release()

# replace and transaction helpers
c.put("/r", "old")
assert c.replace("/r", "old", "new") is True
assert c.replace("/r", "old", "newer") is False
assert c.get("/r")[0] == b"new"
ok, _ = c.transaction(compare=[c.transactions.create("/r") > 0],
                      success=[c.transactions.delete("/r")], failure=[])
assert ok and c.get("/r")[0] is None
print("ETCD3-WATCH-OK")
"""


@pytest.mark.conformance
def test_etcd3_client_watch_lease_lock(pyetcd):
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    r = subprocess.run([sys.executable, "-c", SCRIPT, pyetcd.endpoint], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0 and "ETCD3-WATCH-OK" in r.stdout, r.stdout + r.stderr[-3000:]
