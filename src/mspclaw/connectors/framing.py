"""Where one HTTP/1.1 answer begins and ends: llhttp (``httptools``) plus the rules it leaves to us.

Sans-I/O: :class:`ResponseReader` takes the bytes a connection received after a request was
sent, and says when the answer is complete, what it is, and whether the connection may carry
another request. The transport (:mod:`mspclaw.connectors.transport`) is the asyncio pump.

llhttp (Node.js's parser, strict by default: no leniency flag is ever set) refuses what RFC 9112
section 6.3 makes a message-length error: two ``Content-Length`` headers (even equal ones), a
list or a non-digit in it, ``Transfer-Encoding`` together with ``Content-Length``, bad or
overflowing chunk sizes, a bare LF, obs-fold, control characters. On top of it this module
refuses:

* a ``Transfer-Encoding`` other than exactly ``chunked`` (``gzip, chunked``, ``chunked, gzip``,
  ``chunked, chunked``): we never send ``TE``, so a server may apply no other coding, and a
  response whose chunked is not last would be read to the end of the connection;
* ``Transfer-Encoding`` in an HTTP/1.0 answer, and ``101 Switching Protocols`` (never asked for);
* more than :data:`MAX_INTERIM` interim ``1xx`` answers before the final one;
* a head (status line and headers, interim answers included) over ``max_head`` bytes; in a
  chunked answer, framing (head, chunk-size lines, extensions, trailers) over ``max_head`` bytes
  more than the body's own size (llhttp streams chunk extensions and would accept a size line of
  any length); a body over ``max_body`` bytes, the declared ``Content-Length`` included.

Bytes after the final answer (a second answer the server sent unasked, or garbage) never become
the answer to the next request: :attr:`ResponseReader.extra` is set and the connection must not
be reused. The answer to a ``HEAD`` request ends with its head; bytes after it are extra.
"""

from __future__ import annotations

from typing import Final

import httptools

MAX_HEAD_BYTES: Final = 64 * 1024
"""Status lines and headers of one answer, its interim 1xx answers included."""
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
"""One answer's body: a PSA's JSON never comes near it."""
MAX_INTERIM: Final = 8
"""Interim answers (``100 Continue``, ``103 Early Hints``) accepted before the final one."""


class FramingError(Exception):
    """The answer breaks HTTP/1.1 framing or a limit; the connection is unusable. ``str()`` says how."""


class ResponseReader:
    """Reads the answer to one request (see the module docstring). Feed bytes, then EOF if the peer closed."""

    __slots__ = (
        "_body_bytes",
        "_chunked",
        "_fed",
        "_head_done",
        "_head_request",
        "_interim",
        "_max_body",
        "_max_head",
        "_parser",
        "_te",
        "body",
        "complete",
        "extra",
        "headers",
        "keep_alive",
        "reason",
        "started",
        "status",
        "version",
    )

    def __init__(self, *, head_request: bool = False, max_head: int = MAX_HEAD_BYTES,
                 max_body: int = MAX_BODY_BYTES) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head_request = head_request
        self._max_head = max_head
        self._max_body = max_body
        self.started = False
        """Whether any byte of an answer has arrived."""
        self.complete = False
        self.extra = False
        """Bytes arrived after the final answer: the connection must not carry another request."""
        self.keep_alive = False
        self.status = 0
        self.version = b"HTTP/1.1"
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self._interim = 0
        self._head_done = False
        self._fed = 0
        self._body_bytes = 0
        self._chunked = False
        self._te: list[bytes] = []

    # -- input ----------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes received; raises :class:`FramingError` when they break the answer."""
        if not data:
            return
        self.started = True
        if self.complete:
            self.extra = True
            return
        self._fed += len(data)
        if not self._head_done:
            room = self._max_head - self._fed + len(data)
            first = data[:room]
            self._parse(first)
            if not self._head_done:
                if self._fed >= self._max_head:
                    raise FramingError(f"the answer's status line and headers are over {self._max_head} bytes")
                return
            if len(first) < len(data):
                self._parse(data[len(first):])
        else:
            self._parse(data)
        if self._chunked and self._fed - self._body_bytes > self._max_head + self._body_bytes:
            self.complete = False  # whatever llhttp made of it
            raise FramingError(f"the answer's framing (headers, chunk-size lines, extensions, trailers) is over "
                               f"{self._max_head} bytes beyond its {self._body_bytes}-byte body")

    def feed_eof(self) -> None:
        """The peer closed the connection: ends a close-delimited body, or raises :class:`FramingError`."""
        if self.complete:
            return
        if self._head_done and not self._chunked and self._content_length() is None:
            self.complete = True  # read until the end of the connection (RFC 9112 6.3, item 8)
            self.keep_alive = False
            return
        if not self.started:
            raise FramingError("the server closed the connection without answering")
        if not self._head_done:
            raise FramingError("the server closed the connection in the middle of the answer's headers")
        raise FramingError("the server closed the connection in the middle of the answer")

    def _parse(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, FramingError):
                raise cause from None
            raise FramingError(f"the answer could not be read: {exc}") from exc
        except httptools.HttpParserUpgrade:
            raise FramingError("the server switched protocols, which was never asked for") from None
        except httptools.HttpParserError as exc:
            if self.complete:  # garbage after a complete answer: that answer stands, the connection does not
                self.extra = True
                return
            raise FramingError(f"the answer breaks HTTP/1.1 framing: {exc}") from None

    # -- llhttp's callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True

    def on_status(self, reason: bytes) -> None:
        if not self.complete:
            self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_done or self.complete:
            return  # trailers, and headers of an answer nobody asked for
        self.headers.append((name, value))
        if name.lower() == b"transfer-encoding":
            self._te.append(value)

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        parser = self._parser
        status = parser.get_status_code()
        if status == 101:
            raise FramingError("the server switched protocols (101), which was never asked for")
        if 100 <= status < 200:
            self._interim += 1
            if self._interim > MAX_INTERIM:
                raise FramingError(f"more than {MAX_INTERIM} interim 1xx answers before the final one")
            self.headers, self.reason, self._te = [], b"", []
            return
        version = parser.get_http_version()
        self.status, self.version = status, b"HTTP/" + version.encode("ascii")
        if self._te:
            codings = [c.strip().lower() for value in self._te for c in value.split(b",")]
            if codings != [b"chunked"]:
                raise FramingError(f"Transfer-Encoding {b', '.join(self._te)[:80]!r} is not accepted: only "
                                   "'chunked', once, as we never ask for other transfer codings")
            if version == "1.0":
                raise FramingError("an HTTP/1.0 answer with Transfer-Encoding has no reliable length")
            self._chunked = True
        length = self._content_length()
        if length is not None and length > self._max_body:
            raise FramingError(f"an answer of {length} bytes is over the {self._max_body}-byte limit")
        self.keep_alive = parser.should_keep_alive()
        self._head_done = True
        if self._head_request:
            self.complete = True  # a HEAD answer has no body, whatever its headers say

    def on_body(self, body: bytes) -> None:
        if self.complete:
            self.extra = True
            return
        self._body_bytes += len(body)
        if self._body_bytes > self._max_body:
            raise FramingError(f"an answer over the {self._max_body}-byte limit")
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self._head_done:
            self.complete = True

    def _content_length(self) -> int | None:
        for name, value in self.headers:
            if name.lower() == b"content-length":
                return int(value)  # llhttp has refused anything but one run of digits
        return None
