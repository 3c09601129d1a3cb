"""A small HTTPS server for URL-check tests: serves 200 on every path but /down (503).

Usage: https_server.py CERT KEY MAX_TLS (TLSv1_2 or TLSv1_3). Prints its port, then serves
until its stdin closes.
"""
import http.server
import ssl
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def do_GET(self):
        code = 503 if self.path.startswith('/down') else 200
        self.send_response(code)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')

    def log_message(self, *args):
        pass


def main():
    cert, key, max_tls = sys.argv[1:4]
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = getattr(ssl.TLSVersion, max_tls)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()


if __name__ == '__main__':
    main()
