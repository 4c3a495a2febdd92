"""Bytes this process really sent and received over TCP, read from the kernel's per-socket counters.

gloo and the rendezvous store talk over TCP sockets that this process owns; the kernel keeps
`tcpi_bytes_acked` (payload bytes the peer acknowledged) and `tcpi_bytes_received` for each of them
(struct tcp_info, Linux >= 4.1/4.2). Summing their growth over our open sockets measures the traffic of
this process alone, even when several shards share one network namespace (the local backend).
"""

from __future__ import annotations

import os
import socket
import struct

# Offsets of tcpi_bytes_acked and tcpi_bytes_received in struct tcp_info (include/uapi/linux/tcp.h).
_BYTES_ACKED_OFFSET = 120
_TCP_INFO_LEN = 136


def _tcp_socket_counters() -> dict[str, tuple[int, int]]:
    """{socket inode: (bytes_acked, bytes_received)} for every TCP socket of this process."""
    counters = {}
    for fd_name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd_name}")
        except OSError:
            continue  # closed meanwhile
        if not target.startswith("socket:"):
            continue
        try:
            sock = socket.socket(fileno=os.dup(int(fd_name)))
        except OSError:
            continue
        try:
            if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
            if len(info) >= _TCP_INFO_LEN:
                counters[target] = struct.unpack_from("QQ", info, _BYTES_ACKED_OFFSET)
        except OSError:
            pass
        finally:
            sock.close()  # closes only our duplicate descriptor
    return counters


class TrafficCounter:
    """Growth of this process's TCP traffic between calls of `delta()`."""

    def __init__(self):
        self._last = _tcp_socket_counters()
        self.total_sent = 0
        self.total_recv = 0

    def delta(self) -> tuple[int, int]:
        """(bytes sent, bytes received) since the previous call; sockets opened since then count from 0."""
        now = _tcp_socket_counters()
        sent = recv = 0
        for key, (acked, received) in now.items():
            last_acked, last_received = self._last.get(key, (0, 0))
            sent += max(0, acked - last_acked)
            recv += max(0, received - last_received)
        self._last = now
        self.total_sent += sent
        self.total_recv += recv
        return sent, recv
