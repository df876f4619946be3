"""Several teacher servers behind one teacher: who gets the next request, who is set aside, what each did.

A teacher configured with a list of URLs (``teacher.host`` or ``teacher.openai_base_url``) spreads its
requests over them:
- each server takes at most ``limit`` requests at once (teacher.concurrency, per server); a new request goes
  to the healthy server with the fewest requests in flight (queued ones included), ties to the first listed;
- a server that refuses, times out or fails (HTTP 5xx, a dropped connection) is set aside for
  ``retry_wait_s`` doubling with each failure in a row (at most 60 s); while it is aside, requests go to the
  others; when every server is aside, the one due back first is tried (a single server behaves as before);
- ``stats()`` gives each server's replies, rows (items in list replies, else 1) and failures by kind, for the
  stage summaries.
Clients and semaphores belong to one event loop: a stage that calls ``asyncio.run`` again gets new ones.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

MAX_ASIDE_S = 60.0
HEALTH_KINDS = ("refused", "timeout", "server")  # failures that say something about the server, not the model


@dataclass
class _LoopClient:
    loop: asyncio.AbstractEventLoop
    client: Any
    semaphore: asyncio.Semaphore


@dataclass
class Server:
    """One server: where it is, its load and health, and what it has done so far."""
    url: str | None
    limit: int
    in_flight: int = 0
    failures_in_row: int = 0
    aside_until: float = 0.0  # time.monotonic(): the server is aside while now < aside_until
    replies: int = 0
    rows: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    times_set_aside: int = 0
    bound: _LoopClient | None = None

    def healthy(self, now: float) -> bool:
        return now >= self.aside_until


class ServerPool:
    """The servers of one teacher. ``new_client(url)`` makes a backend client for a server."""

    def __init__(self, urls: Sequence[str | None], limit: int, retry_wait_s: float,
                 new_client: Callable[[str | None], Any]):
        if not urls:
            raise ValueError("a teacher needs at least one server")
        self.servers = [Server(url, max(1, int(limit))) for url in urls]
        self.retry_wait_s = float(retry_wait_s)
        self.new_client = new_client

    @property
    def concurrency(self) -> int:
        """Requests in flight at once over all servers."""
        return sum(server.limit for server in self.servers)

    def pick(self) -> Server:
        """The healthy server with the fewest requests in flight; when none is healthy, the one due back first."""
        now = time.monotonic()
        healthy = [s for s in self.servers if s.healthy(now)]
        if healthy:
            return min(healthy, key=lambda s: s.in_flight / s.limit)
        return min(self.servers, key=lambda s: s.aside_until)

    def others_healthy(self, server: Server) -> bool:
        now = time.monotonic()
        return any(s is not server and s.healthy(now) for s in self.servers)

    def _bound(self, server: Server) -> _LoopClient:
        loop = asyncio.get_running_loop()
        if server.bound is None or server.bound.loop is not loop:
            server.bound = _LoopClient(loop, self.new_client(server.url), asyncio.Semaphore(server.limit))
        return server.bound

    @asynccontextmanager
    async def use(self, server: Server) -> AsyncIterator[Any]:
        """Hold one of the server's slots (counted in flight while waiting for it); yields its client."""
        bound = self._bound(server)
        server.in_flight += 1
        try:
            async with bound.semaphore:
                yield bound.client
        finally:
            server.in_flight -= 1

    def succeeded(self, server: Server, result: Any) -> None:
        server.failures_in_row = 0
        server.aside_until = 0.0
        server.replies += 1
        server.rows += len(result) if isinstance(result, list) else 1

    def failed(self, server: Server, kind: str) -> bool:
        """Count a failed try; a failure of the server itself sets it aside. True when it was set aside."""
        server.failures[kind] += 1
        if kind not in HEALTH_KINDS:
            return False
        server.failures_in_row += 1
        server.times_set_aside += 1
        wait = min(self.retry_wait_s * 2 ** (server.failures_in_row - 1), MAX_ASIDE_S)
        server.aside_until = time.monotonic() + wait
        return True

    def stats(self) -> list[dict[str, Any]]:
        """What each server did: url, replies, rows, failures by kind, times set aside."""
        return [{"url": s.url, "replies": s.replies, "rows": s.rows, "failures": dict(sorted(s.failures.items())),
                 "times_set_aside": s.times_set_aside} for s in self.servers]

    async def aclose(self, close_client: Callable[[Any], Any]) -> None:
        """Close the clients bound to the running loop (others died with their loop)."""
        loop = asyncio.get_running_loop()
        for server in self.servers:
            bound, server.bound = server.bound, None
            if bound is not None and bound.loop is loop:
                await close_client(bound.client)
