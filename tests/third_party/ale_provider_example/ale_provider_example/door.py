"""A host Unix socket shown inside an example sandbox: a socket in the sandbox's folder
that the agent's uid may connect to, each connection relayed to the host's socket."""

from __future__ import annotations

import contextlib
import os
import socket
import threading


class Door(threading.Thread):
    def __init__(self, inside: str, host: str) -> None:
        super().__init__(daemon=True, name=f"ale-example-door-{os.path.basename(inside)}")
        self.host = host
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(inside)
        os.chmod(inside, 0o666)
        self.server.listen(16)
        self.start()

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        with conn, socket.socket(socket.AF_UNIX) as upstream:
            try:
                upstream.connect(self.host)
            except OSError:
                return
            back = threading.Thread(target=_copy, args=(upstream, conn), daemon=True)
            back.start()
            _copy(conn, upstream)
            back.join(30)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        self.server.close()


def _copy(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(1 << 16):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
