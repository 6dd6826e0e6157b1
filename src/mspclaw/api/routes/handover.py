"""``/s/{token}``: the view-once page that shows a user their temporary password (``pipeline/handover.py``).

The token in the link is the only credential, 256 random bits, and it works once. ``GET`` shows a
page with a button and reveals nothing, so a mail scanner or chat preview that follows the link
does not use it up; only the button's ``POST`` shows the secret and forgets it. Responses are
``no-store`` and send no referrer; nothing here logs the token or the secret.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse

from mspclaw.api.auth import ServicesDep
from mspclaw.errors import NotFound
from mspclaw.pipeline.handover import describe

open_router = APIRouter()

_TOKEN = Path(pattern=r"^[A-Za-z0-9_-]{20,100}$")
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>MSPclaw</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer">
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1b1f24}}
.secret{{font:1.6rem ui-monospace,monospace;background:#f2f4f7;padding:.8rem 1rem;border-radius:.4rem;
letter-spacing:.05em;user-select:all}}button{{font-size:1rem;padding:.6rem 1.2rem;border-radius:.4rem;
border:1px solid #1f6feb;background:#1f6feb;color:#fff;cursor:pointer}}.muted{{color:#57606a}}</style>
</head><body>{body}</body></html>"""


def _page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(body=body), status_code=status, headers=_HEADERS)


def _gone(message: str) -> HTMLResponse:
    return _page(f"<h1>This link no longer works</h1><p>{html.escape(message)}</p>", 410)


@open_router.get("/s/{token}", response_class=HTMLResponse, tags=["handover"], include_in_schema=False)
def offer(svc: ServicesDep, token: str = _TOKEN) -> HTMLResponse:
    try:
        secret = svc.tickets.handover.links.peek(token)
    except NotFound as exc:
        return _gone(exc.message)
    what = describe(secret)
    return _page(f"<h1>Your {what}</h1><p>For the account <b>{html.escape(secret.account)}</b>. It can be shown "
                 "<b>once</b>: have your sign-in screen ready, then press the button.</p>"
                 f'<form method="post"><button type="submit">Show my {what}</button></form>'
                 "<p class=muted>If you did not ask your IT help desk for this, close this page and tell them.</p>")


@open_router.post("/s/{token}", response_class=HTMLResponse, tags=["handover"], include_in_schema=False)
def reveal(svc: ServicesDep, token: str = _TOKEN) -> HTMLResponse:
    try:
        secret = svc.tickets.handover.links.reveal(token)
    except NotFound as exc:
        return _gone(exc.message)
    what = describe(secret)
    after = ("You will be asked to choose a new password as soon as you sign in with it."
             if secret.must_change else "Use it to sign in and register your new authentication method.")
    return _page(f"<h1>Your {what}</h1><p>Account: <b>{html.escape(secret.account)}</b></p>"
                 f'<p class="secret">{html.escape(secret.value)}</p><p>{after}</p>'
                 "<p class=muted>This page will not show it again, and MSPclaw kept no copy.</p>")
