#!/usr/bin/env python3
"""A WhatsApp Cloud API double for scripts/chaos, on loopback only.

Answers POST /v21.0/<phone_number_id>/messages like Meta does ({"messages":[{"id":"wamid..."}]}) and
counts, per Herald message id (the request's `biz_opaque_callback_data`), how many times it
ACCEPTED that message: a message accepted twice was sent twice. Requests it does not accept
(injected 500/429, hangs) are not counted as sent: the provider never acted on them.

Control (GET, from the chaos script only):
  /control?mode=normal            answer 200 after --latency-ms
  /control?mode=hang&seconds=60   hold every request without answering for that long, then drop it
  /control?mode=flaky             5% HTTP 500, 3% HTTP 429 (Retry-After: 1), the rest 200
  /stats                          {"accepted": N, "distinct": N, "twice": N, "last_accept": epoch, ...}
  /ids                            the accepted message ids with their counts, one "id count" a line
  /reset                          forget the counts
"""
import json
import random
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.Lock()
STATE = {"mode": "normal", "hang_until": 0.0}
COUNTS = {}
STATS = {"accepted": 0, "refused_500": 0, "refused_429": 0, "hung": 0, "last_accept": 0.0}
RNG = random.Random(16)
LATENCY = 0.02


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=None):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        with LOCK:
            if url.path == "/control":
                STATE["mode"] = q.get("mode", ["normal"])[0]
                if STATE["mode"] == "hang":
                    STATE["hang_until"] = time.time() + float(q.get("seconds", ["60"])[0])
                return self.reply(200, json.dumps(STATE))
            if url.path == "/stats":
                out = dict(STATS)
                out["distinct"] = len(COUNTS)
                out["twice"] = sum(c - 1 for c in COUNTS.values() if c > 1)
                out["mode"] = STATE["mode"]
                return self.reply(200, json.dumps(out))
            if url.path == "/ids":
                return self.reply(200, "".join(f"{k} {v}\n" for k, v in COUNTS.items()))
            if url.path == "/reset":
                COUNTS.clear()
                for k in STATS:
                    STATS[k] = 0
                return self.reply(200, "{}")
        self.reply(404, "{}")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with LOCK:
            mode = STATE["mode"]
            hang_until = STATE["hang_until"]
        if mode == "hang" and time.time() < hang_until:
            with LOCK:
                STATS["hung"] += 1
            time.sleep(max(0.0, hang_until - time.time()))
            self.close_connection = True
            return  # dropped without an answer: the provider never acted
        if mode == "flaky":
            with LOCK:
                r = RNG.random()
            if r < 0.05:
                with LOCK:
                    STATS["refused_500"] += 1
                return self.reply(500, '{"error":{"message":"injected","code":1,"is_transient":true}}')
            if r < 0.08:
                with LOCK:
                    STATS["refused_429"] += 1
                return self.reply(429, '{"error":{"message":"injected","code":130429}}', {"Retry-After": "1"})
        time.sleep(LATENCY)
        try:
            mid = str(json.loads(body).get("biz_opaque_callback_data", ""))
        except ValueError:
            return self.reply(400, '{"error":{"message":"bad json","code":100}}')
        with LOCK:
            COUNTS[mid] = COUNTS.get(mid, 0) + 1
            STATS["accepted"] += 1
            STATS["last_accept"] = time.time()
        self.reply(200, json.dumps({"messaging_product": "whatsapp", "messages": [{"id": f"wamid.{mid}.{time.time_ns()}"}]}))


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client that hung up (a killed worker, a timed-out request) is expected here


if __name__ == "__main__":
    port = int(sys.argv[1])
    LATENCY = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.02
    Server(("127.0.0.1", port), Handler).serve_forever()
