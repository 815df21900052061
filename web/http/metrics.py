"""Prometheus metrics of the web layer at `GET /metrics`: request count and latency by route
and status. Each app has its own registry, so several apps in one process (tests) don't clash.

Routes are labelled by their pattern (`/s/{token}`), never the raw path, so secret tokens stay
out of the metrics and the number of series stays small.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebMetrics:
    """The web layer's metric families, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "portico_http_requests",
            "HTTP requests answered, by method, route pattern and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "portico_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route pattern.",
            ["method", "route"],
            registry=self.registry,
        )

    def observe(self, request: web.Request, status: int, seconds: float) -> None:
        route = _route(request)
        self.requests.labels(request.method, route, str(status)).inc()
        self.latency.labels(request.method, route).observe(seconds)


METRICS = web.AppKey("web_metrics", WebMetrics)


def _route(request: web.Request) -> str:
    match_info = request.match_info
    if match_info.http_exception is not None:  # nothing matched (404/405)
        return "unmatched"
    resource = match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: sees the final status, error pages included."""
    metrics = request.app.get(METRICS)
    if metrics is None:
        return await handler(request)
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and the like, raised past the error pages
        metrics.observe(request, exc.status, time.perf_counter() - started)
        raise
    except asyncio.CancelledError:  # the client went away: nothing was answered
        raise
    except Exception:
        metrics.observe(request, 500, time.perf_counter() - started)
        raise
    metrics.observe(request, response.status, time.perf_counter() - started)
    return response


async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def setup(app: web.Application) -> None:
    """Create the registry and serve it at `/metrics` (add `metrics_middleware` first too)."""
    app[METRICS] = WebMetrics()
    app.router.add_get("/metrics", metrics_view, name="metrics")
