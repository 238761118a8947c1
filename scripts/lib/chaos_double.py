#!/usr/bin/env python3
"""A WhatsApp Cloud API double for scripts/chaos, on loopback only.

Answers POST /v21.0/<phone_number_id>/messages like Meta does ({"messages":[{"id":"wamid..."}]}) and
counts, per Herald message id (the request's `biz_opaque_callback_data`), how many times it
ACCEPTED that message: a message accepted twice was sent twice. Requests it does not accept
(injected 500/429, hangs) are not counted as sent: the provider never acted on them.

Control (GET, from the chaos script only), on a listener of its own:
  /control?mode=normal            answer 200 after the latency (second argument, ms)
  /control?mode=hang&seconds=60   hold every request without answering for that long, then drop it
  /control?mode=flaky             5% HTTP 500, 3% HTTP 429 (Retry-After: 1), the rest 200
  /stats                          {"accepted": N, "distinct": N, "twice": N, "last_accept": epoch, ...}
  /ids                            the accepted message ids with their counts, one "id count" a line
  /reset                          forget the counts

One asyncio loop serves both listeners: a hung request is a coroutine asleep, not a thread. (A
thread per connection starved the control listener for seconds when two workers' retries piled
up thousands of hung requests, and the chaos run stopped at `hang` on a timed-out stats call.)
Usage: chaos_double.py PORT_FILE LATENCY_MS. Both listeners take free ports on 127.0.0.1; once
they listen, PORT_FILE holds "PROVIDER_PORT CONTROL_PORT".
"""
import asyncio
import json
import os
import random
import sys
import time
from urllib.parse import parse_qs, urlparse

STATE = {"mode": "normal", "hang_until": 0.0}
COUNTS = {}
STATS = {"accepted": 0, "refused_500": 0, "refused_429": 0, "hung": 0, "last_accept": 0.0}
RNG = random.Random(16)
LATENCY = 0.02
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


class Hang(Exception):
    """Drop the connection without an answer."""


async def read_request(reader):
    """One HTTP/1.1 request: (method, target, headers, body), or None at end of stream."""
    line = await reader.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
    return method, target, headers, body


def response(status, body, headers=None):
    data = body.encode()
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", "Content-Type: application/json",
            f"Content-Length: {len(data)}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def control(target):
    url = urlparse(target)
    q = parse_qs(url.query)
    if url.path == "/control":
        STATE["mode"] = q.get("mode", ["normal"])[0]
        if STATE["mode"] == "hang":
            STATE["hang_until"] = time.time() + float(q.get("seconds", ["60"])[0])
        return response(200, json.dumps(STATE))
    if url.path == "/stats":
        out = dict(STATS)
        out["distinct"] = len(COUNTS)
        out["twice"] = sum(c - 1 for c in COUNTS.values() if c > 1)
        out["mode"] = STATE["mode"]
        return response(200, json.dumps(out))
    if url.path == "/ids":
        return response(200, "".join(f"{k} {v}\n" for k, v in COUNTS.items()))
    if url.path == "/reset":
        COUNTS.clear()
        for k in STATS:
            STATS[k] = 0
        return response(200, "{}")
    return response(404, "{}")


async def provider(body):
    if STATE["mode"] == "hang" and time.time() < STATE["hang_until"]:
        STATS["hung"] += 1
        await asyncio.sleep(max(0.0, STATE["hang_until"] - time.time()))
        raise Hang()  # dropped without an answer: the provider never acted
    if STATE["mode"] == "flaky":
        r = RNG.random()
        if r < 0.05:
            STATS["refused_500"] += 1
            return response(500, '{"error":{"message":"injected","code":1,"is_transient":true}}')
        if r < 0.08:
            STATS["refused_429"] += 1
            return response(429, '{"error":{"message":"injected","code":130429}}', {"Retry-After": "1"})
    await asyncio.sleep(LATENCY)
    try:
        mid = str(json.loads(body).get("biz_opaque_callback_data", ""))
    except ValueError:
        return response(400, '{"error":{"message":"bad json","code":100}}')
    COUNTS[mid] = COUNTS.get(mid, 0) + 1
    STATS["accepted"] += 1
    STATS["last_accept"] = time.time()
    return response(200, json.dumps({"messaging_product": "whatsapp", "messages": [{"id": f"wamid.{mid}.{time.time_ns()}"}]}))


def serve(is_control):
    async def handle(reader, writer):
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    break
                method, target, headers, body = request
                if is_control:
                    writer.write(control(target))
                elif method == "POST":
                    writer.write(await provider(body))
                else:
                    writer.write(response(404, "{}"))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (Hang, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a hang's drop, or a client that hung up (a killed worker, a timed-out request)
        finally:
            writer.close()
    return handle


async def main(port_file):
    control_server = await asyncio.start_server(serve(True), "127.0.0.1", 0)
    server = await asyncio.start_server(serve(False), "127.0.0.1", 0, backlog=1024)
    ports = [s.sockets[0].getsockname()[1] for s in (server, control_server)]
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{ports[0]} {ports[1]}\n")
    os.replace(port_file + ".tmp", port_file)
    await server.serve_forever()


if __name__ == "__main__":
    LATENCY = float(sys.argv[2]) / 1000
    asyncio.run(main(sys.argv[1]))
