#!/usr/bin/env python3
"""Stand-ins for the DNS APIs homelab drives, following each one's published request and
response shapes: Pi-hole v6 (/api/auth, /api/config/dns/hosts), AdGuard Home
(/control/rewrite/*), NextDNS (/profiles/<id>/rewrites) and Cloudflare v4
(/zones/<id>/dns_records), with their error answers: a refused credential, a rate limit (429
with Retry-After) and duplicates.

Usage: dns_apis.py KIND CONFIG_JSON. Prints the port it listens on (127.0.0.1), then serves
until killed. CONFIG: {"secret": "...", "records": [...], "rateLimit": N (the first N writes
answer 429), "perPage": N (Cloudflare's largest page), "profile": "...", "zone": "...",
"user": "..."}. GET /_state answers {"records": [...], "writes": [...], "limited": N}: what
the test checks, never part of any API.
"""

import base64
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KIND = sys.argv[1]
CONFIG = json.loads(sys.argv[2])
LOCK = threading.Lock()
STATE = {"records": list(CONFIG.get("records", [])), "writes": [], "limited": 0, "next": 1}


def new_id():
    STATE["next"] += 1
    return "%032x" % (0xABC000 + STATE["next"])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body=None, headers=None):
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None and not isinstance(body, bytes):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else None

    def handle_any(self, method):
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        body = self.body()
        with LOCK:
            if path == "/_state":
                return self.send(200, {"records": STATE["records"], "writes": STATE["writes"], "limited": STATE["limited"]})
            write = method != "GET" and not path.endswith("/auth")
            if write and STATE["limited"] < CONFIG.get("rateLimit", 0):
                STATE["limited"] += 1
                return self.rate_limited()
            return globals()[KIND](self, method, path, query, body)

    def rate_limited(self):
        bodies = {
            "pihole": {"error": {"key": "rate_limiting", "message": "Rate-limiting", "hint": None}},
            "adguard": b"Too Many Requests",
            "nextdns": {"errors": [{"code": "tooManyRequests"}]},
            "cloudflare": {"success": False, "errors": [{"code": 971, "message": "Please wait and consider throttling your request speed"}], "messages": [], "result": None},
        }
        self.send(429, bodies[KIND], {"Retry-After": "1"})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")


# Pi-hole v6: records are "IP NAME" strings of config dns.hosts.
SID = "pihole-session-7f3a"


def pihole(h, method, path, query, body):
    if path == "/api/auth" and method == "POST":
        if (body or {}).get("password") == CONFIG["secret"]:
            return h.send(200, {"session": {"valid": True, "totp": False, "sid": SID, "csrf": "csrf-1", "validity": 1800, "message": "password correct"}, "took": 0.01})
        return h.send(401, {"session": {"valid": False, "totp": False, "sid": None, "validity": -1, "message": "password incorrect"}, "took": 0.01})
    if h.headers.get("X-FTL-SID") != SID and h.headers.get("sid") != SID:
        return h.send(401, {"error": {"key": "unauthorized", "message": "Unauthorized", "hint": None}, "took": 0.0})
    if path == "/api/auth" and method == "DELETE":
        return h.send(204)
    prefix = "/api/config/dns/hosts"
    if path == prefix and method == "GET":
        return h.send(200, {"config": {"dns": {"hosts": STATE["records"]}}, "took": 0.0})
    if path.startswith(prefix + "/"):
        value = urllib.parse.unquote(path[len(prefix) + 1:])
        if method == "PUT":
            if value in STATE["records"]:
                return h.send(400, {"error": {"key": "bad_request", "message": "Item already present", "hint": "Uniqueness of items is enforced"}, "took": 0.0})
            parts = value.split()
            if len(parts) < 2:
                return h.send(400, {"error": {"key": "bad_request", "message": "Invalid value", "hint": "dns.hosts: not a valid HOSTS entry"}, "took": 0.0})
            STATE["records"].append(value)
            STATE["writes"].append(["PUT", value])
            return h.send(201, {"took": 0.0})
        if method == "DELETE":
            if value not in STATE["records"]:
                return h.send(404, {"error": {"key": "not_found", "message": "Item not found", "hint": None}, "took": 0.0})
            STATE["records"].remove(value)
            STATE["writes"].append(["DELETE", value])
            return h.send(204)
    return h.send(404, {"error": {"key": "not_found", "message": "Not found", "hint": path}, "took": 0.0})


# AdGuard Home: rewrites are {"domain", "answer", "enabled"}; basic authentication.
def adguard(h, method, path, query, body):
    want = "Basic " + base64.b64encode(("%s:%s" % (CONFIG.get("user", "admin"), CONFIG["secret"])).encode()).decode()
    if h.headers.get("Authorization") != want:
        return h.send(401, b"Unauthorized")
    if path == "/control/rewrite/list" and method == "GET":
        return h.send(200, STATE["records"])
    if path == "/control/rewrite/add" and method == "POST":
        entry = {"domain": body["domain"], "answer": body["answer"]}
        if any(r["domain"] == entry["domain"] and r["answer"] == entry["answer"] for r in STATE["records"]):
            return h.send(400, b"rewrite already exists")
        STATE["records"].append(dict(entry, enabled=True))
        STATE["writes"].append(["add", entry["domain"], entry["answer"]])
        return h.send(200, b"")
    if path == "/control/rewrite/delete" and method == "POST":
        before = len(STATE["records"])
        STATE["records"] = [r for r in STATE["records"] if not (r["domain"] == body["domain"] and r["answer"] == body["answer"])]
        if len(STATE["records"]) == before:
            return h.send(400, b"rewrite not found")
        STATE["writes"].append(["delete", body["domain"], body["answer"]])
        return h.send(200, b"")
    return h.send(404, b"404 page not found")


# NextDNS: rewrites {"id", "name", "type", "content"} under a profile; X-Api-Key.
def nextdns(h, method, path, query, body):
    if h.headers.get("X-Api-Key") != CONFIG["secret"]:
        return h.send(403, {"errors": [{"code": "forbidden"}]})
    prefix = "/profiles/%s/rewrites" % CONFIG.get("profile", "abc123")
    if not path.startswith("/profiles/"):
        return h.send(404, {"errors": [{"code": "notFound"}]})
    if not (path == prefix or path.startswith(prefix + "/")):
        return h.send(404, {"errors": [{"code": "notFound"}]})
    if path == prefix and method == "GET":
        return h.send(200, {"data": STATE["records"]})
    if path == prefix and method == "POST":
        if any(r["name"] == body["name"] for r in STATE["records"]):
            # A user error: 200 with errors, as the API documents.
            return h.send(200, {"errors": [{"code": "duplicate", "detail": "a rewrite for this name exists", "source": {"pointer": "/name"}}]})
        kind = "A" if all(p.isdigit() for p in body["content"].split(".")) else "CNAME"
        entry = {"id": new_id()[-8:], "name": body["name"], "type": kind, "content": body["content"]}
        STATE["records"].append(entry)
        STATE["writes"].append(["POST", body["name"], body["content"]])
        return h.send(200, {"data": entry})
    if method == "DELETE":
        rid = urllib.parse.unquote(path[len(prefix) + 1:])
        if not any(r["id"] == rid for r in STATE["records"]):
            return h.send(404, {"errors": [{"code": "notFound"}]})
        STATE["records"] = [r for r in STATE["records"] if r["id"] != rid]
        STATE["writes"].append(["DELETE", rid])
        return h.send(204)
    return h.send(405, {"errors": [{"code": "methodNotAllowed"}]})


# Cloudflare v4: {"success", "errors", "messages", "result", "result_info"}; bearer token.
def cf(result, info=None):
    out = {"success": True, "errors": [], "messages": [], "result": result}
    if info:
        out["result_info"] = info
    return out


def cloudflare(h, method, path, query, body):
    if h.headers.get("Authorization") != "Bearer " + CONFIG["secret"]:
        return h.send(403, {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}], "messages": [], "result": None})
    prefix = "/zones/%s/dns_records" % CONFIG.get("zone", "0" * 32)
    if not (path == prefix or path.startswith(prefix + "/")):
        return h.send(404, {"success": False, "errors": [{"code": 7003, "message": "Could not route to %s, perhaps your object identifier is invalid?" % path}], "messages": [], "result": None})
    if path == prefix and method == "GET":
        per_page = min(int(query.get("per_page", ["100"])[0]), CONFIG.get("perPage", 100))
        page = int(query.get("page", ["1"])[0])
        recs = STATE["records"]
        total_pages = max(1, (len(recs) + per_page - 1) // per_page)
        chunk = recs[(page - 1) * per_page: page * per_page]
        return h.send(200, cf(chunk, {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(recs), "total_pages": total_pages}))
    if path == prefix and method == "POST":
        if body.get("proxied") is not False:
            return h.send(400, {"success": False, "errors": [{"code": 9003, "message": "this test zone takes DNS-only records"}], "messages": [], "result": None})
        if any(r["name"] == body["name"] and r["type"] == body["type"] and r["content"] == body["content"] for r in STATE["records"]):
            return h.send(400, {"success": False, "errors": [{"code": 81058, "message": "An identical record already exists."}], "messages": [], "result": None})
        rec = {"id": new_id(), "name": body["name"], "type": body["type"], "content": body["content"], "proxied": body["proxied"], "ttl": body.get("ttl", 1), "comment": body.get("comment")}
        STATE["records"].append(rec)
        STATE["writes"].append(["POST", body["name"], body["content"]])
        return h.send(200, cf(rec))
    rid = path[len(prefix) + 1:]
    found = [r for r in STATE["records"] if r["id"] == rid]
    if not found:
        return h.send(404, {"success": False, "errors": [{"code": 81044, "message": "Record does not exist."}], "messages": [], "result": None})
    if method == "PUT":
        found[0].update({"name": body["name"], "type": body["type"], "content": body["content"], "proxied": body.get("proxied", False), "comment": body.get("comment")})
        STATE["writes"].append(["PUT", rid, body["content"]])
        return h.send(200, cf(found[0]))
    if method == "DELETE":
        STATE["records"] = [r for r in STATE["records"] if r["id"] != rid]
        STATE["writes"].append(["DELETE", rid])
        return h.send(200, cf({"id": rid}))
    return h.send(405, {"success": False, "errors": [{"code": 10405, "message": "Method not allowed"}], "messages": [], "result": None})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
