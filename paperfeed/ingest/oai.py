"""An OAI-PMH 2.0 client: requests with flow control, retries and a polite delay, and the
protocol envelope (errors, records, resumption tokens) parsed with a safe XML parser.

It knows nothing about arXiv's metadata format (see `arxiv_oai`) or the store (see `harvest`).
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
from lxml import etree

log = logging.getLogger(__name__)

OAI_NS = "{http://www.openarchives.org/OAI/2.0/}"
# arXiv's terms of use: no more than one request every three seconds
DEFAULT_DELAY = 3.0
DEFAULT_RETRY_SECONDS = 600.0
# A URL that cannot be reached at all is most likely mistyped: say so quickly
# instead of backing off for the whole retry budget.
FIRST_CONTACT_SECONDS = 10.0
MAX_BACKOFF = 60.0
TIMEOUT = httpx.Timeout(180.0, connect=15.0)  # arXiv can take minutes to send the first byte of a page
# lxml parses a 1,000-record arXiv page in ~11 ms where defusedxml's pure-Python parser takes ~46 ms,
# which alone would cap a harvest near the throughput target. Safety comes from the parser's
# settings: no entity expansion, no DTD loading, no network, and documents with a DOCTYPE refused.
_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False,
                          remove_comments=True, remove_pis=True)  # fmt: skip
Element = etree._Element


class HarvestError(Exception):
    """A harvest could not complete; the message is for the operator."""


class BadInput(HarvestError):
    """The request cannot succeed as given (wrong URL, not an OAI-PMH server, bad argument):
    retrying later will not help, and nothing was stored."""


class OaiError(HarvestError):
    """An <error code="..."> answer from the repository."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"the repository answered {code}: {message}" if message else f"the repository answered {code}")
        self.code = code
        self.text = message


class MalformedResponse(HarvestError):
    """The body is not well-formed XML, or not an OAI-PMH response."""


@dataclass(slots=True)
class Record:
    identifier: str
    datestamp: str
    set_specs: list[str]
    deleted: bool
    metadata: Element | None  # the single child of <metadata>, None for a deleted record


@dataclass(slots=True)
class Page:
    response_date: str
    records: list[Record] = field(default_factory=list)
    token: str | None = None  # None or "": the list is complete
    cursor: int | None = None
    complete_list_size: int | None = None


def _int_attr(el: Element, name: str) -> int | None:
    value = el.get(name)
    return int(value) if value is not None and value.strip().isdigit() else None


def parse_response(body: bytes, url: str, verb: str) -> tuple[Element, str]:
    """The verb's element and the responseDate; raises OaiError for an <error> answer."""
    head = body[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise BadInput(f"{url} answered with an HTML page, not OAI-PMH XML: is this an OAI-PMH base URL?")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as e:
        raise MalformedResponse(f"{url} sent malformed XML ({e}); nothing from this page was stored") from None
    if root.getroottree().docinfo.doctype:
        raise MalformedResponse(f"{url} sent XML with a DOCTYPE, refused for safety (OAI-PMH responses have none)")
    if root.tag != f"{OAI_NS}OAI-PMH":
        raise BadInput(f"{url} answered with <{root.tag}> XML, not an OAI-PMH response: is this an OAI-PMH base URL?")
    errors = root.findall(f"{OAI_NS}error")
    if errors:
        first = errors[0]
        raise OaiError(first.get("code", "unknown"), " ".join((first.text or "").split()))
    element = root.find(f"{OAI_NS}{verb}")
    if element is None:
        raise MalformedResponse(f"{url} sent an OAI-PMH response without <{verb}>")
    return element, (root.findtext(f"{OAI_NS}responseDate") or "").strip()


_RECORD, _HEADER, _METADATA = f"{OAI_NS}record", f"{OAI_NS}header", f"{OAI_NS}metadata"
_IDENTIFIER, _DATESTAMP, _SET_SPEC = f"{OAI_NS}identifier", f"{OAI_NS}datestamp", f"{OAI_NS}setSpec"


def parse_records(container: Element) -> list[Record]:
    out = []
    # one pass over each record's children: a page holds a thousand records, and find() per
    # field costs as much as the parse itself
    for rec in container.iterchildren(_RECORD):
        identifier = datestamp = ""
        specs: list[str] = []
        header = metadata = None
        for part in rec:
            if part.tag == _HEADER:
                header = part
            elif part.tag == _METADATA and len(part):
                metadata = part[0]
        if header is None:
            continue
        for h in header:
            tag = h.tag
            if tag == _IDENTIFIER:
                identifier = (h.text or "").strip()
            elif tag == _DATESTAMP:
                datestamp = (h.text or "").strip()
            elif tag == _SET_SPEC:
                specs.append((h.text or "").strip())
        out.append(Record(identifier, datestamp, specs, header.get("status") == "deleted", metadata))
    return out


def parse_list_records(body: bytes, url: str) -> Page:
    element, response_date = parse_response(body, url, "ListRecords")
    page = Page(response_date=response_date, records=parse_records(element))
    token = element.find(f"{OAI_NS}resumptionToken")
    if token is not None:
        page.token = (token.text or "").strip() or None
        page.cursor = _int_attr(token, "cursor")
        page.complete_list_size = _int_attr(token, "completeListSize")
    return page


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OaiClient:
    """Requests to one OAI-PMH base URL.

    Keeps `delay` seconds between the end of one request and the start of the next, honours
    503/429 with Retry-After (arXiv's flow control), and retries connection errors, timeouts
    and 5xx answers with exponential backoff until `retry_seconds` have passed in waits.
    """

    def __init__(self, base_url: str, *, user_agent: str, delay: float = DEFAULT_DELAY,
                 retry_seconds: float = DEFAULT_RETRY_SECONDS, timeout: float | None = None) -> None:  # fmt: skip
        if not base_url.startswith(("http://", "https://")):
            raise BadInput(f"{base_url!r} is not an http(s) URL")
        self.base_url = base_url
        self.delay = delay
        self.retry_seconds = retry_seconds
        self.waited = 0.0  # seconds spent in polite delays and Retry-After waits, for throughput figures
        self.requests = 0
        self._last_end: float | None = None
        self._reached = False
        self.http = httpx.Client(timeout=TIMEOUT if timeout is None else httpx.Timeout(timeout),
                                 headers={"User-Agent": user_agent}, follow_redirects=True)  # fmt: skip

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> OaiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
            self.waited += seconds

    def _polite(self) -> None:
        if self._last_end is not None:
            self._wait(self.delay - (time.monotonic() - self._last_end))

    def get(self, params: dict[str, str]) -> bytes:
        """The body of a 200 answer to `params`, after any retries."""
        spent = 0.0
        attempt = 0
        while True:
            self._polite()
            attempt += 1
            self.requests += 1
            try:
                resp = self.http.get(self.base_url, params=params)
                body = resp.content
            except httpx.TransportError as e:
                reason, retry_after = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, None
            else:
                self._reached = True
                if resp.status_code == 200:
                    return body
                if resp.status_code not in (408, 429) and resp.status_code < 500:
                    raise BadInput(f"{self.base_url} answered HTTP {resp.status_code}: is this an OAI-PMH base URL?")
                reason = f"HTTP {resp.status_code}"
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
            finally:
                self._last_end = time.monotonic()
            if retry_after:
                wait = retry_after
            else:  # no Retry-After, or arXiv's "Retry-After: 0" on a timed-out page: back off
                wait = min(MAX_BACKOFF, 2.0 ** (attempt - 1))
                wait += random.uniform(0, 0.1 * wait)  # spreads the retries of many harvesters
            if not self._reached and spent + wait > min(self.retry_seconds, FIRST_CONTACT_SECONDS):
                raise BadInput(f"cannot reach {self.base_url} ({reason}): is the URL right?")
            if spent + wait > self.retry_seconds:
                raise HarvestError(
                    f"{self.base_url} kept failing ({reason}) for {spent:.0f}s of retries; try again later"
                )
            log.info("%s: %s; retrying in %.1fs", self.base_url, reason, wait)
            spent += wait
            # the wait replaces the polite delay before the retry
            self._wait(wait)
            self._last_end = None

    def list_records(self, *, metadata_prefix: str, set_spec: str | None = None, from_: str | None = None,
                     until: str | None = None, token: str | None = None) -> Iterator[Page]:  # fmt: skip
        """Pages of ListRecords, following resumptionTokens, starting at `token` if given.

        The next page is fetched and parsed in a background thread while the caller applies
        this one, so the polite delay and the transfer overlap the caller's work. Nothing is
        lost if the caller stops: a page is only ever applied after it was yielded.
        """
        first = {"verb": "ListRecords", "metadataPrefix": metadata_prefix}
        for key, value in (("set", set_spec), ("from", from_), ("until", until)):
            if value:
                first[key] = value

        def fetch(token: str | None) -> Page:
            params = {"verb": "ListRecords", "resumptionToken": token} if token else first
            return parse_list_records(self.get(params), self.base_url)

        pending = _Prefetch(fetch, token)
        while True:
            page = pending.result()
            if page.token:
                pending = _Prefetch(fetch, page.token)
            yield page
            if not page.token:
                return

    def get_record(self, identifier: str, metadata_prefix: str) -> Record:
        params = {"verb": "GetRecord", "identifier": identifier, "metadataPrefix": metadata_prefix}
        element, _ = parse_response(self.get(params), self.base_url, "GetRecord")
        records = parse_records(element)
        if not records:
            raise MalformedResponse(f"{self.base_url} answered GetRecord without a record")
        return records[0]


class _Prefetch:
    """`fn(arg)` running in a daemon thread (a harvest that exits does not wait for it)."""

    def __init__(self, fn: Callable[[str | None], Page], arg: str | None) -> None:
        self._done = threading.Event()
        self._value: Page | None = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn(arg)
            except BaseException as e:  # noqa: BLE001 - handed to the caller by result()
                self._error = e
            finally:
                self._done.set()

        threading.Thread(target=run, daemon=True, name="oai-prefetch").start()

    def result(self) -> Page:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value
