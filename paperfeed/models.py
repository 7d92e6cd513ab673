"""The normalised Paper record that flows from ingest to store to index to web."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

_PUNCT_RE = re.compile(r"[\W_]+", re.UNICODE)


# ASCII punctuation and whitespace to spaces: the fast path of title_key, which a
# full arXiv import calls 2.5 million times.
_ASCII_TABLE = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})


def title_key(title: str) -> str:
    """Dedup key for a title: NFKC, case-folded, punctuation and whitespace removed.

    NFKC folds compatibility forms (ligatures, full-width letters) so that two
    copies of a title typed on different systems compare equal.
    """
    if title.isascii():
        return " ".join(title.lower().translate(_ASCII_TABLE).split())
    folded = unicodedata.normalize("NFKC", title).casefold()
    return " ".join(_PUNCT_RE.sub(" ", folded).split())



# arXiv's identifier schemes: YYMM.NNNN(N) since 2007, archive(.SUBJ)/YYMMNNN before
_ARXIV_ID = re.compile(
    r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Za-z]{2})?/\d{7})(?:v\d+)?$", re.IGNORECASE
)
_ARXIV_IN_TEXT = re.compile(
    r"(?:arxiv\.org/(?:abs|pdf)/|arxiv[:\s]\s*|10\.48550/arxiv\.)"
    r"(\d{4}\.\d{4,5}(?:v\d+)?|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7}(?:v\d+)?)",
    re.IGNORECASE,
)


def arxiv_id_of(value: str | None) -> str | None:
    """A bare arXiv id (no version) from an id, a URL, "arXiv:..." or an arXiv DOI."""
    if not value:
        return None
    value = value.strip()
    m = _ARXIV_ID.match(value)
    if m is None:
        found = _ARXIV_IN_TEXT.search(value)
        m = _ARXIV_ID.match(found.group(1)) if found else None
    if m is None:
        return None
    bare = m.group(1)
    if "/" in bare:  # archives are lower case and subject classes upper case: math.AG/0101001
        archive, number = bare.split("/")
        name, _, subj = archive.partition(".")
        bare = f"{name.lower()}{'.' + subj.upper() if subj else ''}/{number}"
    return bare


_DOI = re.compile(r"10\.\d{4,9}/\S+", re.IGNORECASE)


def doi_of(value: str | None) -> str | None:
    """A DOI, in lower case, from a DOI, "doi:..." or a doi.org URL."""
    if not value:
        return None
    m = _DOI.search(value.strip())
    return m.group(0).rstrip(".,;").lower() if m else None


def stable_id(kind: str, value: str) -> str:
    """A short id that is the same on every machine for the same identity.

    Deterministic ids make a crashed ingest re-runnable: the rerun computes the
    same ids instead of minting new ones.
    """
    return hashlib.blake2b(f"{kind}:{value}".encode(), digest_size=6).hexdigest()


@dataclass(slots=True)
class Paper:
    title: str
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    arxiv_id: str | None = None
    doi: str | None = None
    published: str | None = None  # YYYY-MM-DD
    feed_date: str | None = None  # YYYY-MM-DD: the day it appeared in the feed
    sources: list[str] = field(default_factory=list)
    # id of the paper inside a source that has its own ids (BEIR _id, a CSV id column)
    ext_ids: dict[str, str] = field(default_factory=dict)
    # position of the paper on a source page, so a page can be reproduced in order
    positions: dict[str, int] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    # stored fields, filled in by the store
    id: str = ""
    rowid: int = 0
    hidden: bool = False
    seq: int = 0
    added_seq: int = 0
    content_hash: str = ""
    created_at: str = ""
    updated_at: str = ""
    # title_key(title), when a parser process computed it already (see ingest.pipeline)
    key: str = ""

    def compute_hash(self) -> str:
        """Hash of what the indexes see; an unchanged hash means no re-embedding."""
        text = "\x1e".join((self.title, self.abstract, "\x1f".join(self.authors), "\x1f".join(self.categories)))
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()

    def default_links(self) -> dict[str, str]:
        links = dict(self.links)
        if self.arxiv_id:
            links.setdefault("arxiv", f"https://arxiv.org/abs/{self.arxiv_id}")
            links.setdefault("pdf", f"https://arxiv.org/pdf/{self.arxiv_id}")
        if self.doi:
            links.setdefault("doi", f"https://doi.org/{self.doi}")
        return links

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "arxiv_id": self.arxiv_id,
            "doi": self.doi,
            "title": self.title,
            "abstract": self.abstract,
            "authors": list(self.authors),
            "categories": list(self.categories),
            "published": self.published,
            "feed_date": self.feed_date,
            "sources": list(self.sources),
            "links": self.default_links(),
        }
