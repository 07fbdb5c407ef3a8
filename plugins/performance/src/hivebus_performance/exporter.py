"""A minimal HTTP/1.1 server for ``/metrics`` on the core's own event loop.

Serving from the loop (rather than prometheus_client's server thread) means collectors read the
orchestrator without crossing threads, and shutdown is immediate. One request per connection:
read the head, answer, close. Enough for Prometheus and curl, and nothing else.

Counters and histograms carry a ``_created`` sample in prometheus_client; Prometheus would store
it as one more series per metric that nobody queries. It is dropped here, at exposition, rather
than with ``disable_created_metrics()``, which changes every registry in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["MetricsServer", "WithoutCreated"]

log = logging.getLogger("hivebus.performance")

MAX_HEAD_BYTES = 16 * 1024
REQUEST_TIMEOUT_S = 10.0


class WithoutCreated(Collector):
    """``registry`` as it collects, without the ``_created`` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            kept = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            kept.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield kept


class MetricsServer:
    """``await MetricsServer(registry).start(host, port)``; ``port=0`` picks a free port."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._exposed = WithoutCreated(registry)
        self.host: str | None = None
        self.port: int | None = None
        self.scrapes = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port, limit=MAX_HEAD_BYTES)
        bound = self._server.sockets[0].getsockname()
        self.host, self.port = str(bound[0]), int(bound[1])

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
                status, content_type, body, is_head = self._respond(head)
                headers = (
                    f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
                writer.write(headers.encode("latin-1") + (b"" if is_head else body))
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.LimitOverrunError:
            log.debug("metrics request head too large")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    def _respond(self, head: bytes) -> tuple[str, str, bytes, bool]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3:
            return "400 Bad Request", "text/plain", b"bad request\n", False
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET only\n", False
        path = target.split("?", 1)[0]
        if path != "/metrics":
            return "404 Not Found", "text/plain", b"metrics are at /metrics\n", method == "HEAD"
        accept = ""
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
        encoder, content_type = choose_encoder(accept)
        self.scrapes += 1
        return "200 OK", content_type, encoder(self._exposed), method == "HEAD"
