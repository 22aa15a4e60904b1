"""A real S3-compatible server for the end-to-end tests: moto's server on a free
port of 127.0.0.1, and in front of it a small proxy that fails some requests on
purpose (to test retries and error messages). Prints "MOTO_PORT PROXY_PORT" on
one line once both accept connections, and exits when its standard input closes
(the test process that started it ended).

The proxy forwards every request unchanged, except:
- while the file named by the environment variable S3_FAULTS holds a number N,
  every Nth request for the bucket `flaky` is answered 503 SlowDown (a
  throttling answer S3 gives);
- a request for the bucket `forbidden` is answered 403 AccessDenied;
- with the environment variable S3_LATENCY_MS=N, every request waits N ms first,
  as requests to a real store do (for benchmarks: benches/object_store_scale.py).

Needs `pip install "moto[server]"` (.ci/run installs it).
"""

import http.client
import http.server
import logging
import os
import socket
import sys
import threading

from moto.server import ThreadedMotoServer


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# No line per request (werkzeug's log): nothing reads it.
logging.getLogger("werkzeug").setLevel(logging.ERROR)

moto_port = free_port()
moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
moto.start()

counter = 0
lock = threading.Lock()
faults_file = os.environ.get("S3_FAULTS")
latency = float(os.environ.get("S3_LATENCY_MS", "0")) / 1000


def fault_every():
    if not faults_file:
        return 0
    try:
        with open(faults_file) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def error(code, name, message):
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{name}</Code><Message>{message}</Message></Error>"
    ).encode()
    return code, [("Content-Type", "application/xml")], body


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        global counter
        if latency:
            threading.Event().wait(latency)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        bucket = self.path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        every = fault_every() if bucket == "flaky" else 0
        with lock:
            counter += 1 if every else 0
            n = counter
        if bucket == "forbidden":
            status, headers, out = error(403, "AccessDenied", "Access Denied")
        elif every and n % every == 0:
            status, headers, out = error(503, "SlowDown", "Please reduce your request rate.")
        else:
            conn = http.client.HTTPConnection("127.0.0.1", moto_port, timeout=60)
            conn.request(self.command, self.path, body=body, headers=dict(self.headers))
            resp = conn.getresponse()
            out = resp.read()
            status = resp.status
            dropped = ("transfer-encoding", "connection")
            if self.command != "HEAD":
                dropped += ("content-length",)
            headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in dropped]
            conn.close()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if self.command != "HEAD" or status >= 300:
            self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
threading.Thread(target=proxy.serve_forever, daemon=True).start()

for port in (moto_port, proxy.server_address[1]):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            threading.Event().wait(0.05)

print(moto_port, proxy.server_address[1], flush=True)
sys.stdin.read()
os._exit(0)
