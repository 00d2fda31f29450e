"""A connection guard for tests/test_no_network.py, loaded by Python at start-up (this folder is put first on
PYTHONPATH): every connection to a non-loopback address and every name lookup of a non-local host is recorded in
$NETGUARD_LOG (one line: pid, what, target) and refused, so a test sees each attempt without anything leaving."""
import os
import socket

LOG = os.environ.get("NETGUARD_LOG")
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _local(host) -> bool:
    host = host.decode() if isinstance(host, bytes) else str(host or "")
    return host in LOCAL_NAMES or host.startswith("127.") or host in ("::1", "0.0.0.0", "::")


def _record(what, target):
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(f"{os.getpid()} {what} {target!r}\n")
    raise OSError(101, f"netguard: {what} {target!r} refused (tests/test_no_network.py)")


if LOG:
    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _record("connect", address)
        return _connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _record("connect", address)
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _local(host):
            _record("lookup", host)
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
