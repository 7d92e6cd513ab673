"""A loopback OAI-PMH server that answers as arXiv's does, for the harvest bench and the tests.

It serves records in arXiv's own metadata format (metadataPrefix=arXiv) inside the OAI-PMH 2.0
envelope: ListRecords with from/until/set and resumptionTokens carrying cursor and
completeListSize, GetRecord, Identify, deleted headers, and the protocol's error codes. Faults
(a 503 with Retry-After, an HTML page, malformed XML) can be queued for the next requests.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

ENVELOPE_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.openarchives.org/OAI/2.0/ http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">\n'
)
ARXIV_HEAD = (
    '<arXiv xmlns="http://arxiv.org/OAI/arXiv/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://arxiv.org/OAI/arXiv/ http://arxiv.org/OAI/arXiv.xsd">'
)
ARXIV_SETS = ("cs", "econ", "eess", "math", "nlin", "physics", "physics:astro-ph", "physics:cond-mat",
              "physics:gr-qc", "physics:hep-ex", "physics:hep-th", "physics:quant-ph", "q-bio", "q-fin", "stat")  # fmt: skip


@dataclass
class OaiRecord:
    """One arXiv item as the server holds it. `authors` are (keyname, forenames) pairs."""

    arxiv_id: str
    datestamp: str
    sets: list[str] = field(default_factory=lambda: ["cs"])
    title: str = ""
    abstract: str = ""
    authors: list[tuple[str, str]] = field(default_factory=list)
    categories: str = "cs.LG"
    created: str = ""
    updated: str | None = None
    comments: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    license: str | None = "http://creativecommons.org/licenses/by/4.0/"
    deleted: bool = False


def _el(name: str, value: str | None) -> str:
    return "" if value is None else f"<{name}>{escape(value)}</{name}>"


def record_xml(r: OaiRecord) -> str:
    status = ' status="deleted"' if r.deleted else ""
    specs = "".join(f"<setSpec>{escape(s)}</setSpec>" for s in r.sets)
    header = (f"<header{status}>\n <identifier>oai:arXiv.org:{escape(r.arxiv_id)}</identifier>\n"
              f" <datestamp>{r.datestamp}</datestamp>\n {specs}\n</header>\n")  # fmt: skip
    if r.deleted:
        return f"<record>\n{header}</record>\n"
    authors = "".join(f"<author><keyname>{escape(k)}</keyname><forenames>{escape(f)}</forenames></author>"
                      for k, f in r.authors)  # fmt: skip
    meta = (
        f"{ARXIV_HEAD}\n <id>{escape(r.arxiv_id)}</id><created>{r.created or r.datestamp}</created>"
        f"{_el('updated', r.updated)}<authors>{authors}</authors>{_el('title', r.title)}"
        f"{_el('categories', r.categories)}{_el('comments', r.comments)}{_el('journal-ref', r.journal_ref)}"
        f"{_el('doi', r.doi)}{_el('license', r.license)}{_el('abstract', r.abstract)}</arXiv>\n"
    )
    return f"<record>\n{header}<metadata>\n {meta}</metadata>\n</record>\n"


@dataclass
class Fault:
    """An answer to serve instead of the real one, to the next request that `when` accepts."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/xml; charset=utf-8"
    when: Callable[[dict[str, str]], bool] = lambda params: True
    malformed: bool = False  # the real page, cut off in the middle of a record
    path: str = "/oai"


def retry_after(seconds: int = 1, count: int = 1) -> list[Fault]:
    return [Fault(status=503, body=b"<html><body>Retry after a moment</body></html>",
                  headers={"Retry-After": str(seconds)}, content_type="text/html") for _ in range(count)]  # fmt: skip


class ArxivOaiServer:
    """Serve `records` on http://127.0.0.1:<random port>/oai until stop()."""

    def __init__(self, records: Iterable[OaiRecord] = (), *, page_size: int = 1000, today: str | None = None,
                 sets: Iterable[str] = ARXIV_SETS) -> None:  # fmt: skip
        self.records: list[OaiRecord] = list(records)
        self.page_size = page_size
        self.today = today
        self.sets = set(sets)
        self.faults: list[Fault] = []
        self.requests: list[tuple[float, dict[str, str], dict[str, str]]] = []  # (monotonic time, params, headers)
        self._lists: dict[int, tuple[list[OaiRecord], dict[str, str]]] = {}
        self._rendered: dict[int, str] = {}  # id(record) -> XML, after prerender()
        self._ids = itertools.count(6960524)
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/oai"

    def start(self) -> ArxivOaiServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ArxivOaiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def prerender(self) -> None:
        """Render every record's XML now, so that serving a page costs the bench's harvester no
        waiting on this server (records must not change afterwards)."""
        self._rendered = {id(r): record_xml(r) for r in self.records}

    def expire_tokens(self) -> None:
        with self._lock:
            self._lists.clear()

    def verb_requests(self, verb: str = "ListRecords") -> list[dict[str, str]]:
        return [p for _, p, _ in self.requests if p.get("verb") == verb]

    # ---- protocol ----------------------------------------------------------------------

    def _now(self) -> str:
        now = dt.datetime.now(dt.UTC)
        if self.today:
            return f"{self.today}T{now:%H:%M:%S}Z"
        return f"{now:%Y-%m-%dT%H:%M:%SZ}"

    def _response(self, params: dict[str, str], inner: str, *, with_args: bool = True) -> bytes:
        attrs = "".join(f" {k}={quoteattr(v)}" for k, v in params.items()) if with_args else ""
        return (f"{ENVELOPE_HEAD}<responseDate>{self._now()}</responseDate>\n"
                f"<request{attrs}>http://oaipmh.arxiv.org/oai</request>\n{inner}</OAI-PMH>\n").encode()  # fmt: skip

    def _error(self, params: dict[str, str], code: str, message: str) -> bytes:
        # the spec: for badVerb and badArgument the request element carries no attributes
        with_args = code not in ("badVerb", "badArgument")
        return self._response(params, f'<error code="{code}">{escape(message)}</error>\n', with_args=with_args)

    def answer(self, params: dict[str, str]) -> bytes:
        verb = params.get("verb")
        if verb == "Identify":
            return self._response(params, "<Identify><repositoryName>arXiv</repositoryName>"
                                  "<baseURL>http://oaipmh.arxiv.org/oai</baseURL><protocolVersion>2.0</protocolVersion>"
                                  "<adminEmail>help@arxiv.org</adminEmail><earliestDatestamp>2005-09-16"
                                  "</earliestDatestamp><deletedRecord>persistent</deletedRecord>"
                                  "<granularity>YYYY-MM-DD</granularity></Identify>\n")  # fmt: skip
        if verb == "GetRecord":
            return self._get_record(params)
        if verb == "ListRecords":
            return self._list_records(params)
        return self._error(params, "badVerb", "Illegal verb")

    def _get_record(self, params: dict[str, str]) -> bytes:
        if params.get("metadataPrefix") is None or params.get("identifier") is None:
            return self._error(params, "badArgument", "identifier and metadataPrefix are required")
        if params["metadataPrefix"] != "arXiv":
            return self._error(params, "cannotDisseminateFormat", f"Unknown format {params['metadataPrefix']}")
        ident = params["identifier"]
        for r in self.records:
            if f"oai:arXiv.org:{r.arxiv_id}" == ident:
                return self._response(params, f"<GetRecord>\n{record_xml(r)}</GetRecord>\n")
        return self._error(params, "idDoesNotExist", f"{ident} has the structure of a valid arXiv identifier, "
                                                     "but no such item exists")  # fmt: skip

    def _list_records(self, params: dict[str, str]) -> bytes:
        token = params.get("resumptionToken")
        if token is not None:
            if set(params) != {"verb", "resumptionToken"}:
                return self._error(params, "badArgument", "resumptionToken is an exclusive argument")
            list_id, _, offset = token.partition("|")
            with self._lock:
                found = self._lists.get(int(list_id)) if list_id.isdigit() else None
            if found is None or not offset.isdigit():
                return self._error(params, "badResumptionToken", f"Invalid or expired resumptionToken {token}")
            matching, _ = found
            return self._page(params, matching, int(list_id), int(offset) - 1)
        allowed = {"verb", "metadataPrefix", "set", "from", "until"}
        if "metadataPrefix" not in params or set(params) - allowed:
            return self._error(params, "badArgument", "Illegal or missing arguments")
        if params["metadataPrefix"] != "arXiv":
            return self._error(params, "cannotDisseminateFormat", f"Unknown format {params['metadataPrefix']}")
        days = {}
        for k in ("from", "until"):
            if k in params:
                try:
                    days[k] = dt.date.fromisoformat(params[k]).isoformat()
                except ValueError:
                    return self._error(params, "badArgument", f"Illegal {k} date {params[k]}")
        if "from" in days and "until" in days and days["from"] > days["until"]:
            return self._error(params, "badArgument", "from is after until")
        spec = params.get("set")
        if spec is not None and spec not in self.sets:
            return self._error(params, "badArgument", f"Invalid set: {spec}")
        matching = [
            r for r in self.records
            if days.get("from", "") <= r.datestamp <= days.get("until", "9999")
            and (spec is None or any(s == spec or s.startswith(spec + ":") for s in r.sets))
        ]  # fmt: skip
        if not matching:
            return self._error(params, "noRecordsMatch", "The combination of the values of the from, until, "
                                                         "set and metadataPrefix arguments results in an empty list.")  # fmt: skip
        list_id = next(self._ids)
        with self._lock:
            self._lists[list_id] = (matching, dict(params))
        return self._page(params, matching, list_id, 0)

    def _page(self, params: dict[str, str], matching: list[OaiRecord], list_id: int, offset: int) -> bytes:
        chunk = matching[offset : offset + self.page_size]
        rendered = self._rendered
        body = "".join(rendered.get(id(r)) or record_xml(r) for r in chunk)
        if offset + self.page_size < len(matching):
            token = (f'<resumptionToken cursor="{offset}" completeListSize="{len(matching)}">'
                     f"{list_id}|{offset + self.page_size + 1}</resumptionToken>\n")  # fmt: skip
        elif offset > 0:
            # the last page of a split list ends with an empty token, as the protocol says
            token = f'<resumptionToken cursor="{offset}" completeListSize="{len(matching)}"/>\n'
        else:
            token = ""
        return self._response(params, f"<ListRecords>\n{body}{token}</ListRecords>\n")

    # ---- HTTP --------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                server.requests.append((time.monotonic(), params, dict(self.headers.items())))
                fault = None
                with server._lock:
                    for i, f in enumerate(server.faults):
                        if f.path == parts.path and f.when(params):
                            fault = server.faults.pop(i)
                            break
                if fault is None and parts.path != "/oai":
                    return self._send(404, b"<html><body>Not Found</body></html>", "text/html")
                if fault is not None and not fault.malformed:
                    return self._send(fault.status, fault.body or b"", fault.content_type, fault.headers)
                body = server.answer(params)
                if fault is not None:
                    body = body[: body.find(b"</record>", len(body) // 2) - 20]  # cut inside a record
                self._send(200, body, "text/xml; charset=utf-8")

            def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        return Handler
