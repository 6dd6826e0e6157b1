"""PSAHttp's URLs: a plain path and its query joined to the base URL in one string, the same URL httpx builds.

``PSAHttp._absolute`` skips httpx's three parses of each request's URL for plain paths; every request
must still go to exactly the URL ``AsyncClient.build_request`` would have made, query included.
"""

from __future__ import annotations

import random
import string
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mspclaw.connectors.http import PSAHttp

BASES = ["http://127.0.0.1:8000/api/v1", "https://psa.example/", "https://eu.psa.example:8443/v4_6_release/apis/3.0",
         "https://user:p%40ss@psa.example/x", "https://psa.example", "https://psa.example/a?tenant=7",
         "https://psa.example/base#frag", "http://[::1]:9000/api", "https://PSA.Example/Api"]
PATHS = ["/tickets", "/tickets/42", "/tickets/T-1_2~3/notes", "/tickets/a%2Fb/notes", "/tickets/%C3%A9t%c3%a9",
         "/.well-known/x", "/a/./b", "/a/../b", "/a/.", "/a/..", "/a..b/c.d", "/x/", "//other.example/x",
         "tickets/relative", "/tickets?include=notes", "/tickets#top", "/with space", "/ünïcode", "/a;b=c",
         "/a:b", "/a@b", "/a+b", "/a!b$c", "/a'b(c)*", "/%zz", "/%", "/a%2", "/", "/.", "/..", "/a//b", "http://x/y",
         "", "/tickets/42/", "/~user", "/-_.~"]
PARAMS: list[dict[str, Any] | None] = [
    None, {}, {"include": "notes"}, {"page": 2, "page_size": 100}, {"updated_since": "2026-12-06T20:00:00+00:00"},
    {"q": "a b&c=d/e?f#g"}, {"name": "ünï"}, {"empty": ""}, {"plus": "1+1", "pct": "100%"}]


def built_by_httpx(http: PSAHttp, method: str, url: str, params: Any) -> httpx.Request:
    """The request httpx's own merging makes (a client with a transport given, so no TLS context is loaded)."""
    client = httpx.AsyncClient(base_url=http.base_url, headers={"Authorization": "Bearer t"}, transport=Recorder())
    return client.build_request(method, url or http.base_url, params=params)


class Recorder(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={})


@pytest.mark.anyio
@pytest.mark.parametrize("base", BASES)
async def test_every_request_goes_to_the_url_httpx_would_build(base: str) -> None:
    recorder = Recorder()
    async with PSAHttp(service="test", base_url=base, headers={"Authorization": "Bearer t"},
                       transport=recorder) as http:
        for path in PATHS:
            for params in PARAMS:
                try:
                    expected = built_by_httpx(http, "GET", path, params)
                except httpx.InvalidURL:
                    with pytest.raises(httpx.InvalidURL):
                        await http.request("GET", path, params=params)
                    continue
                await http.request("GET", path, params=params)
                sent = recorder.requests[-1]
                assert sent.url == expected.url, (base, path, params)
                assert str(sent.url) == str(expected.url)
                assert sent.url.raw_path == expected.url.raw_path
                assert sent.headers.raw == expected.headers.raw


def test_plain_paths_take_the_joined_string_and_the_rest_httpx_merging() -> None:
    http = PSAHttp(service="test", base_url="https://psa.example/api/v1", transport=Recorder())
    assert http._absolute("/tickets/42", {"include": "notes"}) == "https://psa.example/api/v1/tickets/42?include=notes"
    assert http._absolute("/tickets/a%2Fb/notes", None) == "https://psa.example/api/v1/tickets/a%2Fb/notes"
    for other in ["", "/a/../b", "/a/./b", "/..", "//host/x", "/t?x=1", "/t#f", "/with space", "/ü", "http://x/y"]:
        assert http._absolute(other, None) is None, other
    with_query = PSAHttp(service="test", base_url="https://psa.example/api?tenant=7", transport=Recorder())
    assert with_query._absolute("/tickets", None) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*string.ascii_letters[:6], *"0129-_~./%", "%2F", "%c3", "..", "/"]), max_size=12),
       st.dictionaries(st.text(max_size=6), st.one_of(st.text(max_size=8), st.integers()), max_size=3))
def test_random_paths_and_queries_reach_the_same_url(parts: list[str], params: dict[str, Any]) -> None:
    import asyncio

    path = "/" + "".join(parts)

    async def main() -> None:
        recorder = Recorder()
        async with PSAHttp(service="test", base_url="https://psa.example/api/v1", transport=recorder) as http:
            try:
                expected = built_by_httpx(http, "GET", path, params)
            except httpx.InvalidURL:
                return
            await http.request("GET", path, params=params)
            assert str(recorder.requests[-1].url) == str(expected.url), (path, params)

    asyncio.run(main())


def test_random_ascii_paths_reach_the_same_url() -> None:
    import asyncio

    rng = random.Random(19)
    alphabet = string.ascii_letters + string.digits + "-_~./%:@!$&'()*+,;= ?#"

    async def main() -> None:
        recorder = Recorder()
        async with PSAHttp(service="test", base_url="https://psa.example/api/v1", transport=recorder) as http:
            for _ in range(2000):
                path = "/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
                try:
                    expected = built_by_httpx(http, "GET", path, None)
                except httpx.InvalidURL:
                    continue
                await http.request("GET", path)
                assert str(recorder.requests[-1].url) == str(expected.url), path

    asyncio.run(main())
