"""PgQueuer 1.6 as a peer: enqueue COUNT jobs, or drain them with one consumer process.

    python pgqueuer_drain.py enqueue          COUNT jobs, 1,000 per call
    python pgqueuer_drain.py drain noop       each job does nothing
    python pgqueuer_drain.py drain http       each job POSTs a WhatsApp-sized JSON body to TARGET_URL

Environment: DATABASE_URL (required), COUNT (20000), TARGET_URL, BATCH (100), HTTP_CONNECTIONS (100).
Prints one line, `jobs_per_s=<rate>`, timed in-process from the first dequeue to the empty queue.
"""
import asyncio
import json
import os
import sys
import time
from datetime import timedelta

import aiohttp
import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode

COUNT = int(os.environ.get("COUNT", "20000"))
BATCH = int(os.environ.get("BATCH", "100"))
TARGET_URL = os.environ.get("TARGET_URL", "http://127.0.0.1:8080/v21.0/messages")
# About the size of a WhatsApp text send: the same work per request as Herald's HTTP runs.
PAYLOAD = json.dumps({
    "messaging_product": "whatsapp", "recipient_type": "individual", "to": "+2348031234567",
    "type": "text", "text": {"body": "Hi Ngozi, your parcel HX-20931 leaves the depot today. " * 4},
}).encode()


async def enqueue() -> float:
    connection = await asyncpg.connect(os.environ["DATABASE_URL"])
    queries = Queries(AsyncpgDriver(connection))
    started = time.perf_counter()
    for first in range(0, COUNT, 1000):
        size = min(1000, COUNT - first)
        await queries.enqueue(["deliver"] * size, [b"{}"] * size, [0] * size)
    elapsed = time.perf_counter() - started
    await connection.close()
    return COUNT / elapsed


async def drain(mode: str) -> float:
    connection = await asyncpg.connect(os.environ["DATABASE_URL"])
    queue = PgQueuer(AsyncpgDriver(connection))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        limit=int(os.environ.get("HTTP_CONNECTIONS", "100"))))

    @queue.entrypoint("deliver")
    async def deliver(job) -> None:
        if mode == "http":
            async with session.post(TARGET_URL, data=PAYLOAD,
                                    headers={"content-type": "application/json"}) as answer:
                answer.raise_for_status()
                await answer.read()

    started = time.perf_counter()
    await queue.qm.run(batch_size=BATCH, mode=QueueExecutionMode.drain,
                       dequeue_timeout=timedelta(seconds=1))
    elapsed = time.perf_counter() - started
    await session.close()
    await connection.close()
    return COUNT / elapsed


def main() -> None:
    if sys.argv[1:2] == ["enqueue"]:
        rate = asyncio.run(enqueue())
    elif sys.argv[1:2] == ["drain"] and sys.argv[2:3] in (["noop"], ["http"]):
        rate = asyncio.run(drain(sys.argv[2]))
    else:
        sys.exit("usage: pgqueuer_drain.py enqueue | drain noop|http")
    print(f"jobs_per_s={rate:.0f}", flush=True)


if __name__ == "__main__":
    main()
