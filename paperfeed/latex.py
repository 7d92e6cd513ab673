"""Text-mode LaTeX in titles and abstracts, as readers expect to see it.

arXiv metadata is written in LaTeX: `{\\em weighting vector}`, `Erd\\H{o}s`, `10\\%`, `pages
3--7`, ``quoted''. The store keeps it as it came (the system of record is faithful); pages,
snippets and mails show `plain_text(text)` instead: accents as the letters they make, escapes as
their characters, dashes and quotes as typeset, font switches without the command. Formulas
between dollars are left as they are, for the MathML renderer (paperfeed.web.math). A command it
does not know is left as written: showing `\\foo` is better than guessing.
"""

from __future__ import annotations

import re
import unicodedata

# a formula: $...$ on one line, the dollars not escaped (\$ is a dollar sign)
MATH_SPAN = re.compile(r"(?<!\\)\$([^$\n]{1,300})(?<!\\)\$")

# accent command -> combining character
_ACCENTS = {
    "'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304",
    ".": "\u0307", "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328",
    "r": "\u030a",
}  # fmt: skip
_LETTERS = {
    "ss": "ß", "o": "ø", "O": "Ø", "ae": "æ", "AE": "Æ", "aa": "å", "AA": "Å", "l": "ł", "L": "Ł",
    "oe": "œ", "OE": "Œ", "i": "ı", "j": "ȷ",
}  # fmt: skip


def _accent_pattern(commands: str, bare: str) -> re.Pattern[str]:
    """An accent command and its letter (`\\'e`, `\\'{e}`, `\\v c`, `\\'{\\i}`), or all that in
    one pair of braces (`{\\'e}`): the braces go only in pairs, so `\\emph{caf\\'e}` keeps its own."""
    one = rf"\\({commands})(?:\s*\{{\s*(\\?[A-Za-z])\s*\}}|{bare}(\\?[A-Za-z]))"
    return re.compile(rf"\{{{one}\}}|{one}")


_SYMBOL_ACCENT = _accent_pattern("""['`^"~=.]""", r"\s*")
_LETTER_ACCENT = _accent_pattern("[uvHckr]", r"\s+")
# a letter command; as in TeX, one space after a bare one ends it and is not printed (Stra\ss e)
_LETTER = re.compile(r"\{\\(ss|ae|AE|aa|AA|oe|OE|o|O|l|L|i|j)\}|\\(ss|ae|AE|aa|AA|oe|OE|o|O|l|L|i|j)(?![A-Za-z]) ?")
_FONT_ARG = re.compile(r"\\(?:emph|textit|textbf|textsc|texttt|textrm|textsf|textsl|textup|textnormal|text|mbox|underline)\{([^{}]*)\}")
_FONT_GROUP = re.compile(r"\{\\(?:em|it|bf|sl|sc|tt|rm|sf|bfseries|itshape|scshape)\s+([^{}]*)\}")
_ESCAPED = re.compile(r"\\([%&_#{}$])")
# "3--7", "Erdős--Rényi", "A -- B"; not "--flag" (an option)
_EN_DASH = re.compile(r"(?<=\w)--(?=[\s\w])|(?<=\s)--(?=\s)")
_EM_DASH = re.compile(r"(?<=[\s\w])---(?=[\s\w])")
_QUOTES = re.compile(r"``([^`'\n]{1,300})''")
_TIE = re.compile(r"(?<=[^\s/])~(?=[^\s/])")
# a URL is left as written: its ~, -- and backslashes are not typesetting
_URL = re.compile(r"\b(?:https?|ftp)://\S+|\bwww\.\S+")


def _accented(accent: str, letter: str) -> str:
    # an accent goes on a dotless i or j (\'{\i}) in place of the dot: í, not ı́
    base = {"\\i": "i", "\\j": "j"}.get(letter) or (_LETTERS.get(letter[1:], letter[1:]) if letter.startswith("\\") else letter)
    return unicodedata.normalize("NFC", base + _ACCENTS[accent])


def _accent_sub(m: re.Match[str]) -> str:
    g = m.groups()  # (command, braced letter, bare letter) in braces, then the same without
    accent, braced, bare = g[:3] if g[0] else g[3:]
    return _accented(accent, braced or bare)


def text_mode(text: str) -> str:
    """`text` (no formulas in it) with its text-mode LaTeX as readers expect to see it."""
    if "://" in text or "www." in text:
        parts, pos = [], 0
        for m in _URL.finditer(text):
            parts += [_typeset(text[pos : m.start()]), m.group(0)]
            pos = m.end()
        return "".join([*parts, _typeset(text[pos:])])
    return _typeset(text)


def _typeset(text: str) -> str:
    if "\\" in text:
        text = _SYMBOL_ACCENT.sub(_accent_sub, text)
        text = _LETTER_ACCENT.sub(_accent_sub, text)
        text = _LETTER.sub(lambda m: _LETTERS[m.group(1) or m.group(2)], text)
        for _ in range(3):  # nested switches, from the inside out
            text, n = _FONT_ARG.subn(r"\1", text)
            text, g = _FONT_GROUP.subn(r"\1", text)
            if not n + g:
                break
        text = _ESCAPED.sub(r"\1", text)
    if "--" in text:
        text = _EM_DASH.sub("\u2014", text)
        text = _EN_DASH.sub("\u2013", text)
    if "``" in text:
        text = _QUOTES.sub("\u201c\\1\u201d", text)
    if "~" in text:
        text = _TIE.sub("\u00a0", text)
    return text


def plain_text(text: str | None) -> str:
    """`text` with its text-mode LaTeX as readers expect to see it; $...$ spans untouched."""
    text = text or ""
    if "\\" not in text and "--" not in text and "``" not in text and "~" not in text:
        return text  # most texts: nothing to do
    out: list[str] = []
    pos = 0
    for m in MATH_SPAN.finditer(text):
        out.append(text_mode(text[pos : m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(text_mode(text[pos:]))
    return "".join(out)
