"""A small HTTPS server for URL-check tests: serves 200 on every path but /down (503).

Usage: https_server.py CERT KEY MAX_TLS [LOG] (MAX_TLS is TLSv1_2 or TLSv1_3). Prints its
port, then serves until its stdin closes. With LOG, appends a line "MONOTONIC HOST PATH" for
each request as it arrives (seconds of the system's monotonic clock, which the Kubernetes API
stand-in's journal uses too).
"""
import http.server
import ssl
import sys
import threading
import time

LOG = None
LOG_LOCK = threading.Lock()


class Server(http.server.ThreadingHTTPServer):
    # Clients probe every URL of a lab at once; the default backlog of 5 would drop the SYNs
    # of the rest and delay them by a second of TCP retransmission.
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # a client that rejects the certificate ends the handshake; that is its test


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def setup(self):
        # The TLS handshake runs in the request's thread, so handshakes do not wait in line
        # behind each other in the accepting thread.
        self.request.do_handshake()
        super().setup()

    def do_GET(self):
        if LOG is not None:
            with LOG_LOCK:
                LOG.write(f'{time.monotonic()} {self.headers.get("Host", "")} {self.path}\n')
                LOG.flush()
        code = 503 if self.path.startswith('/down') else 200
        self.send_response(code)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')

    def log_message(self, *args):
        pass


def main():
    global LOG
    cert, key, max_tls = sys.argv[1:4]
    if len(sys.argv) > 4:
        LOG = open(sys.argv[4], 'a')
    server = Server(('127.0.0.1', 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = getattr(ssl.TLSVersion, max_tls)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()


if __name__ == '__main__':
    main()
