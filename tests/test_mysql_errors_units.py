"""What the MySQL adapter says when a server fails a connection in a way no other rule knows
(drkit.mysql.connection): a server on loopback that answers pymysql's handshake wrongly."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pydantic import SecretStr

from drkit.errors import ServerError
from drkit.mysql.connection import Server, connect


@contextmanager
def _answering(packet: bytes) -> Iterator[int]:
    """A server on a loopback port that answers one connection with ``packet`` and closes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.sendall(packet)

        thread = threading.Thread(target=answer)
        thread.start()
        try:
            yield listener.getsockname()[1]
        finally:
            thread.join(timeout=30)


def _packet(sequence: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([sequence]) + payload


@pytest.mark.parametrize(("packet", "said"), [
    # An error code below 1000 no rule maps: pymysql raises InternalError.
    (_packet(0, b"\xff" + struct.pack("<H", 999) + b"#HY000The server is shutting down"),
     "failed the connection: The server is shutting down (ERROR 999)."),
    # A packet out of sequence (a proxy mixing connections): InternalError from pymysql itself.
    (_packet(5, b"\x0a5.7.0\x00"),
     "failed the connection: Packet sequence number wrong - got 5 expected 0."),
], ids=["code-below-1000", "out-of-sequence"])
def test_a_driver_error_at_connect_is_a_server_failure_in_the_servers_words(packet, said):
    with _answering(packet) as port:
        server = Server(role="source", host="127.0.0.1", port=port, user="admin",
                        password=SecretStr("hunter2-secret"), tls="disabled")
        with pytest.raises(ServerError) as failed:
            connect(server)
    assert failed.value.exit_code == 10
    assert failed.value.message == f"The source server 127.0.0.1:{port} {said}"
    assert "hunter2-secret" not in str(failed.value)


def test_a_port_that_accepts_and_never_speaks_mysql_fails_within_the_connect_timeout():
    """pymysql timed only the TCP connect: a listener that never sends the greeting (a wrong
    port, a stuck proxy; the attack pointed --target at Azurite's port) held the command
    until killed. Now the whole connect gives up after connect_timeout (here 1 s)."""
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        server = Server(role="target", host="127.0.0.1", port=port, user="admin",
                        password=SecretStr("x"), tls="disabled", connect_timeout=1)
        failed: list[BaseException] = []

        def attempt() -> None:
            try:
                connect(server)
            except BaseException as error:  # noqa: BLE001 - what the test looks at
                failed.append(error)
            finally:
                stop.set()

        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        accepted, _ = listener.accept()  # accepted, and never a byte sent
        with accepted:
            assert stop.wait(timeout=60), "connect() still waits for the server's greeting"
    assert isinstance(failed[0], ServerError) and failed[0].exit_code == 10, failed
    assert f"127.0.0.1:{port}" in failed[0].message
