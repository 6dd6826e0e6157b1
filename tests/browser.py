"""A small driver for a real headless Chromium over the DevTools protocol (CDP) on loopback.

Launches Debian's ``chromium`` (``make test`` installs it) with a throw-away profile and
``--remote-debugging-port=0``, reads the DevTools WebSocket URL it prints on stderr, and talks CDP
over that socket with the ``websockets`` library. Typing and clicking go through ``Input.*``
(real key and mouse events at the element's position), so the page's own handlers run as they do
for a user. JavaScript exceptions and ``console.error`` calls are collected in ``errors``, requests that
failed in ``failed_requests``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0", "about:blank"]


def chromium_or_skip() -> str:
    """The browser's path. Skips (with the reason) only where it cannot be installed: no apt."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.skip(f"{CHROMIUM} is absent and this system has no apt-get to install Debian's chromium")
    pytest.fail(f"{CHROMIUM} is absent: run `make test` (it installs Debian's chromium with apt-get)")


class CDPError(RuntimeError):
    pass


class Page:
    """One tab, attached with a flat session on the browser's socket."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self._browser, self.session_id = browser, session_id

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self._browser.send(method, session_id=self.session_id, **params)

    async def goto(self, url: str, timeout: float = 15) -> None:
        loaded = self._browser.expect("Page.loadEventFired", self.session_id)
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        await asyncio.wait_for(loaded, timeout)

    async def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            value = await self.eval(expression)
            if value:
                return value
            if loop.time() > end:
                raise TimeoutError(f"{expression!r} still falsy after {timeout}s; page text: "
                                   f"{await self.text()!r}; errors: {self._browser.errors}")
            await asyncio.sleep(0.05)

    async def text(self, selector: str = "body") -> str:
        return str(await self.eval(f"document.querySelector({json.dumps(selector)}).innerText"))

    async def visible(self, selector: str) -> bool:
        """True when the element takes room on the page (not hidden by itself or an ancestor)."""
        return bool(await self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" return !!e && e.getClientRects().length > 0; }})()"))

    async def _centre(self, selector: str) -> tuple[float, float]:
        box = await self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            f" e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();"
            f" return r.width && r.height ? [r.x + r.width / 2, r.y + r.height / 2] : null; }})()")
        if not box:
            raise CDPError(f"{selector} is absent or not visible, so it cannot be clicked")
        return float(box[0]), float(box[1])

    async def click(self, selector: str) -> None:
        """A real left click at the element's centre."""
        x, y = await self._centre(selector)
        for kind in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    async def type(self, selector: str, text: str) -> None:
        """Click into a field and type the text as keyboard input."""
        await self.click(selector)
        await self.send("Input.insertText", text=text)

    async def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                            windowsVirtualKeyCode=13, **({"text": "\r"} if kind == "keyDown" else {}))


class Browser:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: list[tuple[str, str | None, asyncio.Future[dict[str, Any]]]] = []
        self.errors: list[str] = []
        """JavaScript exceptions, console errors and other error log entries of every page."""
        self.failed_requests: list[str] = []
        """Requests answered with an error status (URL: text), e.g. a refused login."""
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self._ws:
                msg = json.loads(raw)
                if "id" in msg:
                    fut = self._pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        if "error" in msg:
                            fut.set_exception(CDPError(str(msg["error"])))
                        else:
                            fut.set_result(msg.get("result", {}))
                    continue
                method, session = msg.get("method"), msg.get("sessionId")
                params = msg.get("params", {})
                if method == "Runtime.exceptionThrown":
                    self.errors.append(str(params.get("exceptionDetails", {}).get("exception", {})
                                           .get("description") or params))
                elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                    self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
                elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                    entry = params["entry"]
                    if entry.get("source") == "network":
                        self.failed_requests.append(f"{entry.get('url')}: {entry.get('text')}")
                    else:
                        self.errors.append(str(entry.get("text")))
                for waiter in list(self._waiters):
                    if waiter[0] == method and waiter[1] in (None, session) and not waiter[2].done():
                        waiter[2].set_result(params)
                        self._waiters.remove(waiter)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(CDPError("the browser closed its DevTools socket"))

    def expect(self, method: str, session_id: str | None = None) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, session_id, fut))
        return fut

    async def send(self, method: str, session_id: str | None = None, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session_id:
            msg["sessionId"] = session_id
        await self._ws.send(json.dumps(msg))
        return await asyncio.wait_for(fut, 15)

    async def new_page(self) -> Page:
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        page = Page(self, attached["sessionId"])
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            await page.send(domain)
        return page

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        await self._ws.close()


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A fresh headless Chromium (own temporary profile), closed and removed afterwards."""
    path = chromium_or_skip()
    with tempfile.TemporaryDirectory(prefix="mspclaw-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(path, *FLAGS[:-1], f"--user-data-dir={profile}", FLAGS[-1],
                                                    stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        try:
            assert proc.stderr is not None
            seen: list[str] = []
            url = None
            async with asyncio.timeout(30):
                while url is None:
                    line = (await proc.stderr.readline()).decode(errors="replace")
                    if not line:
                        raise CDPError(f"chromium exited ({await proc.wait()}) before DevTools listened: "
                                       f"{''.join(seen)[-2000:]}")
                    seen.append(line)
                    found = re.search(r"DevTools listening on (ws://\S+)", line)
                    url = found.group(1) if found else None
            drain = asyncio.create_task(_drain(proc.stderr))
            async with connect(url, max_size=None, open_timeout=15) as ws:
                browser = Browser(ws)
                try:
                    yield browser
                finally:
                    await browser.close()
            drain.cancel()
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _drain(stream: asyncio.StreamReader) -> None:
    """Keep reading the browser's stderr so it never blocks on a full pipe."""
    while await stream.readline():
        pass
