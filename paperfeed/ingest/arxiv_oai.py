"""arXiv's own OAI-PMH metadata format (metadataPrefix=arXiv) as Paper records.

A record looks like (namespace http://arxiv.org/OAI/arXiv/):

    <arXiv><id>2210.02885</id><created>2022-10-06</created><updated>2022-11-02</updated>
      <authors><author><keyname>Doe</keyname><forenames>Jane</forenames></author>...</authors>
      <title>...</title><categories>cs.LG stat.ML</categories><comments>...</comments>
      <journal-ref>...</journal-ref><doi>...</doi><license>...</license><abstract>...</abstract>
    </arXiv>

`created` is the day of version 1, `updated` the day of the latest version (absent while
there is only one). The format carries no version numbers.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from paperfeed.ingest import arxiv
from paperfeed.ingest.oai import Element, Record
from paperfeed.latex import plain_text
from paperfeed.models import Paper

NS = "{http://arxiv.org/OAI/arXiv/}"
_NAME_SLOTS = {f"{NS}keyname": 0, f"{NS}forenames": 1, f"{NS}suffix": 2}
METADATA_PREFIX = "arXiv"
IDENTIFIER_PREFIX = "oai:arXiv.org:"
DEFAULT_URL = "https://oaipmh.arxiv.org/oai"
# A record first seen with no later version and a datestamp at most this many days after its
# submission is a new announcement: it enters the feed on its datestamp.
NEW_WITHIN_DAYS = 7

# 2210.02885, 2210.02885v2, 0704.0001; hep-th/9901001, math.AG/0601001v3
_ID_RE = re.compile(r"^(?:\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$")


@dataclass(slots=True)
class ArxivRecord:
    arxiv_id: str
    datestamp: str
    deleted: bool
    paper: Paper | None  # None for a deleted record
    created: str | None = None
    updated: str | None = None
    comments: str | None = None
    journal_ref: str | None = None
    license: str | None = None


def normalise_id(value: str) -> str:
    """'arxiv:2210.02885v2', 'https://arxiv.org/abs/2210.02885' or '2210.02885' -> '2210.02885'.

    Raises ValueError with a message for the user when it is not an arXiv identifier.
    """
    raw = value.strip()
    v = raw
    for prefix in ("https://arxiv.org/abs/", "http://arxiv.org/abs/", "arxiv.org/abs/", IDENTIFIER_PREFIX, "arXiv:",
                   "arxiv:"):  # fmt: skip
        if v.startswith(prefix):
            v = v[len(prefix):]
            break
    if not _ID_RE.match(v):
        raise ValueError(f"{raw!r} is not an arXiv identifier (expected e.g. arxiv:2210.02885 or hep-th/9901001)")
    return re.sub(r"v\d+$", "", v)


def _day(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()[:10]
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return None
    return value


def feed_date(created: str | None, updated: str | None, datestamp: str) -> str | None:
    """The day a paper new to the store enters the feed.

    A fresh submission (one version, stamped within NEW_WITHIN_DAYS of its submission) enters
    on its datestamp, the day arXiv released it; anything older that reaches us (a revision
    of an old paper, a bibliographic update) enters on its submission day, as the snapshot
    importer has it, so it does not crowd today's page.
    """
    day = _day(datestamp)
    if created and day and not updated:
        age = (dt.date.fromisoformat(day) - dt.date.fromisoformat(created)).days
        if 0 <= age <= NEW_WITHIN_DAYS:
            return day
    return created or day


def to_record(rec: Record) -> ArxivRecord:
    """Raises ValueError naming the problem for a record that cannot be used."""
    if not rec.identifier.startswith(IDENTIFIER_PREFIX):
        raise ValueError(f"identifier {rec.identifier!r} is not an arXiv OAI identifier")
    arxiv_id = rec.identifier[len(IDENTIFIER_PREFIX):]
    if _day(rec.datestamp) is None:
        raise ValueError(f"{arxiv_id}: datestamp {rec.datestamp!r} is not a YYYY-MM-DD date")
    datestamp = rec.datestamp[:10]
    if rec.deleted:
        return ArxivRecord(arxiv_id=arxiv_id, datestamp=datestamp, deleted=True, paper=None)
    meta = rec.metadata
    if meta is None or meta.tag != f"{NS}arXiv":
        raise ValueError(f"{arxiv_id}: no arXiv-format metadata (was metadataPrefix=arXiv sent?)")
    # one pass over the children: a page has a thousand records, and find() per field costs
    # more than the rest of the conversion
    fields: dict[str, Element] = {}
    skip = len(NS)
    for child in meta:
        fields[child.tag[skip:]] = child
    authors = []
    if "authors" in fields:
        for a in fields["authors"]:
            name = ["", "", ""]  # keyname, forenames, suffix: the snapshot's authors_parsed order
            for part in a:
                slot = _NAME_SLOTS.get(part.tag)
                if slot is not None and part.text:
                    # arXiv writes names in LaTeX ("Bal\\'azs"); the snapshot's authors_parsed has
                    # them typeset ("Balázs"), and a harvested update must name the same people
                    name[slot] = " ".join(plain_text(part.text).split())
            authors.append(name)

    def text(name: str) -> str | None:
        el = fields.get(name)
        return None if el is None else el.text

    def clean(name: str) -> str | None:
        return " ".join((text(name) or "").split()) or None

    created = _day(text("created"))
    updated = _day(text("updated"))
    try:
        paper = arxiv.make_paper(text("id") or arxiv_id, text("title"), text("abstract"), authors,
                                 clean("categories"), text("doi"), created)  # fmt: skip
    except ValueError as e:
        raise ValueError(f"{arxiv_id}: {e}") from None
    paper.feed_date = feed_date(created, updated, datestamp)
    return ArxivRecord(
        arxiv_id=paper.arxiv_id or arxiv_id, datestamp=datestamp, deleted=False, paper=paper, created=created,
        updated=updated, comments=clean("comments"), journal_ref=clean("journal-ref"), license=clean("license"),
    )  # fmt: skip
