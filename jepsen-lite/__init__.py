"""jepsen-lite: fault campaigns with checkers, against pyetcd and real etcd
alike (an etcd operator's or developer's tool).

    jepsen-lite run --server pyetcd|etcd|PATH --members 3 --workload register,append \\
        --nemesis kill,partition --time 60 --rate 200 --clients 10 --seed 7 --out DIR
    jepsen-lite check DIR

It starts the members itself (through :mod:`pyetcd.testing`, in network
namespaces it creates when partitions are asked for), drives them over the
wire only (the gRPC stubs of :mod:`pyetcd.pb`), records every operation as
a history (``history.jsonl``), injects faults on a schedule
(``nemesis.jsonl``) and checks what it observed: linearizability
(:mod:`.checkers.linear`), Elle-style dependency cycles
(:mod:`.checkers.elle`), sets, watch guarantees, lock and lease safety.  It
never assumes the server is correct.  Imports nothing of pyetcd's server.
"""
