"""Real torch.distributed failures for tests/test_cluster_units.py: run as two processes (RANK 0 and 1, WORLD_SIZE 2,
MASTER_ADDR/MASTER_PORT set). Rank 1 stays away past gloo's 1 s timeout, meets rank 0 once more, then exits; rank 0
prints one JSON line: for each failure, [what, exception type, is_collective_failure(exc), its first line]."""
import datetime
import json
import os
import socket
import time

import torch
import torch.distributed as dist

from prefswift.distributed.watchdog import is_collective_failure


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=1))
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
    if dist.get_rank() == 1:
        time.sleep(2.5)
        dist.barrier()
        os._exit(0)
    seen = []

    def attempt(what, fn):
        try:
            fn()
            seen.append([what, None, None, ""])
        except Exception as exc:  # noqa: BLE001
            seen.append([what, type(exc).__name__, is_collective_failure(exc), str(exc).splitlines()[0][:160]])

    attempt("barrier, peer late", dist.barrier)
    attempt("DDP backward, peer late", lambda: model(torch.ones(1, 2)).sum().backward())
    attempt("store, nobody listens", lambda: dist.TCPStore("127.0.0.1", closed_port(), 2, False,
                                                           datetime.timedelta(seconds=1)))
    store = dist.TCPStore("127.0.0.1", 0, 1, True, datetime.timedelta(seconds=0.5), wait_for_workers=False)
    attempt("store, key never set", lambda: store.get("never"))
    time.sleep(2.5)  # rank 1 has exited
    attempt("all_reduce, peer gone", lambda: dist.all_reduce(torch.ones(1)))
    attempt("DDP forward, peer gone", lambda: model(torch.ones(1, 2)))
    print(json.dumps(seen), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
