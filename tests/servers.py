"""Real servers on 127.0.0.1 for the remote tests and the remote benchmark.

:class:`RangeServer` is a small threaded HTTP/1.1 server of our own: it serves byte strings
under paths, honours single ``Range`` requests (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``), sends
``ETag``/``Last-Modified`` and honours ``If-Match``, counts requests and body bytes, and can
misbehave on demand: added latency, ignoring ``Range``, a fixed status (403, 404, 503...), the
first N requests failing with 503, truncated bodies (connection closed early) and short
ranges (a well-formed 206 with fewer bytes than asked).  Random faults, by probability per
GET (seeded, so a run can be repeated): connections reset mid-body (RST), 503 answers, bodies
cut off (FIN after half), answers slower than the client's timeout; ``stats.faults`` counts
what was injected.

:func:`moto_s3` starts moto's ``ThreadedMotoServer`` (a real S3 HTTP API) on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class Behaviour:
    latency: float = 0.0  #: seconds added before every answer
    bandwidth: float = 0.0  #: bytes per second of a simulated link (0: unlimited)
    ignore_range: bool = False  #: answer 200 with the whole object
    no_suffix: bool = False  #: ignore suffix ranges (``bytes=-n``) only
    status: int | None = None  #: answer every request with this status
    fail_first: int = 0  #: this many requests answered 503 first
    truncate: bool = False  #: close the connection after half the body
    short: bool = False  #: a 206 with half of the asked range (headers agree with the body)
    # random faults (probability per GET)
    p_reset: float = 0.0  #: reset the connection (RST) after half the body
    p_unavailable: float = 0.0  #: answer 503
    p_truncate: float = 0.0  #: close the connection (FIN) after half the body
    p_slow: float = 0.0  #: wait ``slow_seconds`` before answering
    slow_seconds: float = 0.0
    seed: int = 0


@dataclass
class Stats:
    requests: int = 0
    bytes_sent: int = 0
    ranges: list = field(default_factory=list)  #: (start, stop) served, or None for 200
    in_flight: int = 0
    max_in_flight: int = 0  #: most requests being answered at the same time
    faults: dict = field(default_factory=dict)  #: kind -> how many were injected

    def reset(self) -> None:
        self.requests = 0
        self.bytes_sent = 0
        self.ranges = []
        self.max_in_flight = 0
        self.faults = {}


class RangeServer:
    """``with RangeServer() as srv: srv.put("/a.ozx", data); srv.url("/a.ozx")``"""

    def __init__(self, **behaviour):
        self.objects: dict[str, tuple[bytes, str, str]] = {}
        self.behaviour = Behaviour(**behaviour)
        self.stats = Stats()
        self._lock = threading.Lock()
        self._random = random.Random(self.behaviour.seed)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body are separate writes: without this, Nagle + delayed ACK add
            # 40 ms to every small response
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._answer(head=True)

            def do_GET(self):
                self._answer(head=False)

            def _answer(self, head: bool):
                st = server.stats
                with server._lock:
                    st.requests += 1
                    st.in_flight += 1
                    st.max_in_flight = max(st.max_in_flight, st.in_flight)
                try:
                    self._respond(head, st.requests)
                finally:
                    with server._lock:
                        st.in_flight -= 1

            def _respond(self, head: bool, n: int):
                b = server.behaviour
                if b.latency:
                    time.sleep(b.latency)
                fault = None if head else server._draw_fault()
                if fault == "slow":
                    time.sleep(b.slow_seconds)
                elif fault == "unavailable":
                    body = b"status 503 (injected)\n"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                path = self.path.split("?", 1)[0]
                obj = server.objects.get(path)
                if b.status is not None or n <= b.fail_first or obj is None:
                    status = b.status or (503 if n <= b.fail_first else 404)
                    body = f"status {status}\n".encode()
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                data, etag, modified = obj
                match = self.headers.get("If-Match")
                if match is not None and match != etag:
                    self.send_response(412)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size = len(data)
                rng = self.headers.get("Range")
                m = _RANGE.match(rng or "") if not b.ignore_range else None
                if m is not None and b.no_suffix and not m.group(1):
                    m = None
                if m is None or (not m.group(1) and not m.group(2)):
                    status, start, stop = 200, 0, size
                elif not m.group(1):
                    status, start, stop = 206, max(0, size - int(m.group(2))), size
                else:
                    start = int(m.group(1))
                    stop = min(size, int(m.group(2)) + 1) if m.group(2) else size
                    status = 206
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                if b.short and status == 206 and stop - start > 1:
                    stop = start + (stop - start) // 2
                body = data[start:stop]
                if not head:  # recorded before answering: a client may hang up at the headers
                    with server._lock:
                        server.stats.ranges.append((start, stop) if status == 206 else None)
                if b.bandwidth and not head:
                    time.sleep(len(body) / b.bandwidth)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", modified)
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
                self.end_headers()
                if head:
                    return
                try:
                    if fault == "reset":
                        self.wfile.write(body[: len(body) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        # SO_LINGER 0: close() sends RST, not FIN
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   struct.pack("ii", 1, 0))
                        self.connection.close()
                        return
                    if b.truncate or fault == "truncate":
                        half = body[: len(body) // 2]
                        self.wfile.write(half)
                        self.wfile.flush()
                        server.stats.bytes_sent += len(half)
                        self.close_connection = True
                        with contextlib.suppress(OSError):
                            self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(body)
                    with server._lock:
                        server.stats.bytes_sent += len(body)
                except (BrokenPipeError, ConnectionResetError):
                    # the client dropped a response it did not want (e.g. an ignored Range)
                    self.close_connection = True

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # the default listen backlog of 5 drops concurrent connects

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _draw_fault(self) -> str | None:
        b = self.behaviour
        with self._lock:
            x = self._random.random()
            for kind, p in (("reset", b.p_reset), ("unavailable", b.p_unavailable),
                            ("truncate", b.p_truncate), ("slow", b.p_slow)):
                if x < p:
                    self.stats.faults[kind] = self.stats.faults.get(kind, 0) + 1
                    return kind
                x -= p
        return None

    def put(self, path: str, data: bytes) -> str:
        """Serve ``data`` at ``path`` (a new version: new ETag and Last-Modified)."""
        etag = '"' + hashlib.md5(data).hexdigest() + '"'
        with self._lock:
            version = sum(1 for p in self.objects if p == path)
        modified = email.utils.formatdate(time.time() + version, usegmt=True)
        self.objects[path] = (bytes(data), etag, modified)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set(self, **behaviour) -> None:
        self.behaviour = Behaviour(**behaviour)
        self._random = random.Random(self.behaviour.seed)

    def start(self) -> RangeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@contextlib.contextmanager
def moto_s3():
    """A moto S3 server on 127.0.0.1; yields its endpoint URL.  Sets boto-style fake
    credentials in the environment (the standard AWS credential chain picks them up)."""
    from moto.server import ThreadedMotoServer

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
