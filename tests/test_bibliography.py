"""Reading BibTeX, RIS and CSL-JSON exports: identifiers, names, and hostile input that must be
reported entry by entry, never raised."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paperfeed.ingest.bibliography import FORMATS, detect_format, parse
from paperfeed.models import arxiv_id_of, doi_of


def test_identifiers_are_found_where_reference_managers_put_them() -> None:
    assert arxiv_id_of("arXiv:2101.00001v3") == "2101.00001"
    assert arxiv_id_of("https://arxiv.org/abs/hep-th/9901001v2") == "hep-th/9901001"
    assert arxiv_id_of("arXiv preprint arXiv:1706.03762") == "1706.03762"
    assert arxiv_id_of("10.48550/arXiv.2210.02885") == "2210.02885"
    assert arxiv_id_of("MATH.ag/0101001") == "math.AG/0101001"
    assert arxiv_id_of("not an id 12345") is None
    assert doi_of("https://doi.org/10.1000/ABC.def") == "10.1000/abc.def"
    assert doi_of("doi:10.1145/3366423.3380130.") == "10.1145/3366423.3380130"
    assert doi_of("nothing") is None


def test_bibtex_names_tex_and_arxiv_fields() -> None:
    bib = rb"""@article{k1, title={{BERT}: Pre-training of Deep {B}idirectional Transformers},
  author={Devlin, Jacob and M{\"u}ller, J{\'o}zsef and {Google AI Language}}, journal={arXiv preprint arXiv:1810.04805},
  year={2018}}
@misc{k2, title={Another}, eprint={2101.00001}, archivePrefix={arXiv}, doi={10.48550/arXiv.2101.00001}}
@misc{k3, title={Not arXiv}, eprint={12345}, eprinttype={pubmed}}
"""
    e1, e2, e3 = parse(bib, "bibtex")
    assert e1.title == "BERT: Pre-training of Deep Bidirectional Transformers"
    assert e1.authors == ["Jacob Devlin", "József Müller", "Google AI Language"]
    assert e1.arxiv_id == "1810.04805" and e1.year == "2018"
    assert e2.arxiv_id == "2101.00001" and e2.doi == "10.48550/arxiv.2101.00001"
    assert e3.arxiv_id is None and e3.error is None


def test_csl_json_as_zotero_writes_it() -> None:
    items = [{"id": "http://zotero.org/users/1/items/ABC", "type": "article", "title": "Attention is all you need",
              "author": [{"family": "Vaswani", "given": "Ashish"}, {"literal": "The Team"}],
              "issued": {"date-parts": [[2017, 6, 12]]}, "number": "arXiv:1706.03762", "DOI": "10.48550/ARXIV.1706.03762",
              "abstract": "The dominant sequence transduction models..."}]  # fmt: skip
    (e,) = parse(json.dumps(items).encode(), "csl-json")
    assert e.authors == ["Ashish Vaswani", "The Team"] and e.year == "2017"
    assert e.arxiv_id == "1706.03762" and e.abstract.startswith("The dominant")
    assert parse(json.dumps({"items": items}).encode(), "csl-json")[0].title == "Attention is all you need"


def test_detection_by_name_and_content() -> None:
    assert detect_format("x.bib", b"") == "bibtex"
    assert detect_format("export", b"TY  - JOUR\nER  - \n") == "ris"
    assert detect_format("export.txt", b'\xef\xbb\xbf[{"title": "x"}]') == "csl-json"
    assert detect_format("export", b"  @article{a, title={x}}") == "bibtex"
    assert detect_format("photo.png", b"\x89PNG\r\n") is None


def test_huge_fields_and_nul_bytes_are_reported() -> None:
    big = b"@misc{a, title={T}, abstract={" + b"word " * 30_000 + b"}}\n@misc{b, title={bad \x00 title}}"
    a, b = parse(big, "bibtex")
    assert len(a.abstract) == 100_000 and "abstract cut" in a.warnings[0]
    assert b.error == "contains a NUL character"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=2000), st.text(max_size=2000).map(lambda t: t.encode("utf-8", "surrogatepass"))),
       fmt=st.sampled_from(FORMATS), prefix=st.sampled_from([b"", b"@misc{x, title={", b"TY  - JOUR\nTI  - ", b'[{"title": ']))  # fmt: skip
def test_any_input_gives_entries_never_an_exception(data: bytes, fmt: str, prefix: bytes) -> None:
    for e in parse(prefix + data, fmt):
        assert e.error is not None or e.title or e.doi or e.arxiv_id
        assert isinstance(e.label, str) and e.index >= 1
