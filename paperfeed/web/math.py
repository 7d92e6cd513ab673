"""TeX in titles and abstracts ($\\alpha_1$, $\\ell_\\infty$) rendered on the server as MathML,
and the text around it as readers expect it (accents, dashes, font switches: paperfeed.latex).

Browsers draw MathML natively, so nothing is fetched from a CDN and no script or inline
style is needed under the site's CSP. The converter's output is not trusted: it copies
\\text{...} through unescaped, so every formula is parsed, rebuilt from an allowlist of
MathML elements and attributes, and serialized again (which escapes all text). A formula
that does not survive that is shown as the TeX it was, escaped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from functools import lru_cache

from latex2mathml.converter import convert
from markupsafe import Markup, escape

from paperfeed.latex import MATH_SPAN, text_mode

_NS = "{http://www.w3.org/1998/Math/MathML}"
_TAGS = frozenset(
    [
        "math",
        "mrow",
        "mi",
        "mn",
        "mo",
        "ms",
        "mtext",
        "mspace",
        "msub",
        "msup",
        "msubsup",
        "mfrac",
        "msqrt",
        "mroot",
        "mover",
        "munder",
        "munderover",
        "mtable",
        "mtr",
        "mtd",
        "mstyle",
        "mpadded",
        "mphantom",
        "menclose",
    ]
)
_ATTRS = frozenset(
    [
        "display",
        "mathvariant",
        "stretchy",
        "fence",
        "separator",
        "accent",
        "accentunder",
        "lspace",
        "rspace",
        "width",
        "height",
        "depth",
        "columnalign",
        "rowalign",
        "linethickness",
        "displaystyle",
        "scriptlevel",
        "minsize",
        "maxsize",
        "movablelimits",
        "notation",
        "symmetric",
        "largeop",
        "form",
    ]
)
# attribute values are words and lengths, never URLs or script
_VALUE = re.compile(r"^[A-Za-z0-9.%\- ]{0,40}$")


class _Unsafe(ValueError):
    pass


def _rebuild(node: ET.Element) -> ET.Element:
    tag = node.tag.removeprefix(_NS)
    if tag not in _TAGS:
        raise _Unsafe(tag)
    out = ET.Element(tag)
    for name, value in node.attrib.items():
        if name == "xmlns":
            continue
        if name not in _ATTRS or not _VALUE.match(value):
            raise _Unsafe(name)
        out.set(name, value)
    out.text = node.text
    for child in node:
        rebuilt = _rebuild(child)
        rebuilt.tail = child.tail
        out.append(rebuilt)
    return out


@lru_cache(maxsize=4096)
def formula(tex: str) -> Markup | None:
    """`tex` as inline MathML, or None when it cannot be converted safely."""
    try:
        tree = ET.fromstring(convert(tex))
        return Markup(ET.tostring(_rebuild(tree), encoding="unicode", method="xml"))
    except Exception:  # noqa: BLE001 - the converter raises many kinds; any failure means plain text
        return None


def render_tex(text: str | None) -> Markup:
    """`text` escaped, with each $...$ span turned into MathML where that is possible and the
    text between in `text_mode`."""
    text = text or ""
    out: list[str] = []
    pos = 0
    for m in MATH_SPAN.finditer(text):
        out.append(escape(text_mode(text[pos : m.start()])))
        out.append(formula(m.group(1)) or escape(m.group(0)))
        pos = m.end()
    out.append(escape(text_mode(text[pos:])))
    return Markup("".join(out))
