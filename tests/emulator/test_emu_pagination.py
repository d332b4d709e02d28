"""GET /v2/pods: a plain `{"pods"}` by default; cursor pagination behind `paginate=N`."""
from __future__ import annotations

import pytest


def test_list_is_unpaginated_by_default_and_ignores_limit(api):
    for i in range(3):
        api.create(name=f"p{i}")
    body = api.get("/pods", params={"limit": 1}).json()
    assert set(body) == {"pods"} and len(body["pods"]) == 3


@pytest.mark.emulator(paginate=2)
def test_following_the_cursor_returns_every_pod_once(api):
    ids = [api.create(name=f"p{i}")["id"] for i in range(5)]
    seen, params, pages = [], {}, 0
    while True:
        body = api.get("/pods", params=params).json()
        pages += 1
        assert len(body["pods"]) <= 2
        seen += [p["id"] for p in body["pods"]]
        if not body["pagination"]["hasNextPage"]:
            assert body["pagination"]["nextCursor"] is None
            break
        params = {"cursor": body["pagination"]["nextCursor"]}
    assert seen == ids and pages == 3


@pytest.mark.emulator(paginate=10)
def test_limit_shrinks_the_page(api):
    for i in range(3):
        api.create(name=f"p{i}")
    body = api.get("/pods", params={"limit": 1}).json()
    assert len(body["pods"]) == 1 and body["pagination"]["hasNextPage"] is True


@pytest.mark.emulator(paginate=2)
def test_bad_cursor_is_400(api):
    assert api.get("/pods", params={"cursor": "garbage!"}).status_code == 400
