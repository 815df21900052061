"""`GET /metrics`: Prometheus text for the web layer, labelled by route pattern and status."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from web.app import create_app


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def labels(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))


async def test_metrics_count_requests_by_route_and_status(settings):
    http = TestClient(TestServer(create_app(settings)))
    await http.start_server()
    try:
        for _ in range(3):
            assert (await http.get("/healthz")).status == 200
        assert (await http.get("/api/v1/approvals")).status == 401
        assert (await http.get("/no/such/page")).status == 404
        assert (await http.get("/s/secret-token-value")).status in (404, 410)

        response = await http.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    finally:
        await http.close()

    counts = samples(text, "portico_http_requests_total")
    assert counts[labels(method="GET", route="/healthz", status="200")] == 3
    assert counts[labels(method="GET", route="/api/v1/approvals", status="401")] == 1
    assert counts[labels(method="GET", route="unmatched", status="404")] == 1
    assert any(dict(k)["route"] == "/s/{token}" for k in counts)
    assert "secret-token-value" not in text  # patterns, never raw paths
    latency = samples(text, "portico_http_request_duration_seconds_count")
    assert latency[labels(method="GET", route="/healthz")] == 3


async def test_each_app_has_its_own_registry(settings):
    first, second = create_app(settings), create_app(settings)
    http = TestClient(TestServer(first))
    await http.start_server()
    try:
        await http.get("/healthz")
    finally:
        await http.close()
    http = TestClient(TestServer(second))
    await http.start_server()
    try:
        text = await (await http.get("/metrics")).text()
    finally:
        await http.close()
    assert samples(text, "portico_http_requests_total") == {}
