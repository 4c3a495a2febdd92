import socket
import threading

from edgetrain.runtime.device.netstats import TrafficCounter


def test_counts_bytes_really_sent_and_received_over_tcp():
    server = socket.create_server(("127.0.0.1", 0))
    payload = b"x" * 3_000_000
    accepted = []

    def serve():
        conn, _ = server.accept()
        accepted.append(conn)  # stays open: a closed socket's counters are gone
        total = 0
        while total < len(payload):
            total += len(conn.recv(1 << 16))
        conn.sendall(b"y" * 1_000_000)

    counter = TrafficCounter()
    thread = threading.Thread(target=serve)
    thread.start()
    with socket.create_connection(server.getsockname()) as client:
        client.sendall(payload)
        got = 0
        while got < 1_000_000:
            got += len(client.recv(1 << 16))
        thread.join()
        sent, recv = counter.delta()
    accepted[0].close()
    server.close()
    # Both ends live in this process: it sent 3 MB + 1 MB and received the same.
    assert 4_000_000 <= sent < 4_100_000
    assert 4_000_000 <= recv < 4_100_000
    assert counter.delta() == (0, 0)
