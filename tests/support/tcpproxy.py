"""A TCP proxy for tests that need a connection to go silent (a dropped network path).

``TcpProxy(host, port)`` listens on 127.0.0.1 and forwards every connection to the
target. ``freeze()`` makes the connections open at that moment swallow what is sent
either way, without closing them: the peers see no error, only no answer, as behind a
firewall that dropped an idle flow. Connections made later forward normally.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._frozen: set[int] = set()          # ids of the client sockets that went silent
        self._open: list[socket.socket] = []    # client sockets of live connections
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        with self._lock:
            self._frozen.update(id(s) for s in self._open)

    def close(self) -> None:
        with self._lock:
            socks, self._sockets = self._sockets, []
        for s in [self._listener, *socks]:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                return
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
                self._open.append(client)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, id(client)), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, key: int) -> None:
        try:
            while data := src.recv(65536):
                if key not in self._frozen:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
