"""Text-mode LaTeX shown as readers expect it (paperfeed.latex), and where it is used: the
rendered abstracts and titles (render_tex) and the search snippets."""

from __future__ import annotations

import pytest

from paperfeed.latex import plain_text
from paperfeed.search.snippets import highlight, snippet
from paperfeed.web.math import render_tex


@pytest.mark.parametrize(
    ("tex", "shown"),
    [
        (r"encoded by the {\em weighting vector}, which", "encoded by the weighting vector, which"),
        (r"Erd\H{o}s and R\'enyi, caf\'{e}, na\"ive, {\'e}t\'e", "Erdős and Rényi, café, naïve, été"),
        (r"\v{C}ech, G\"{o}del, \c{c}a, \'{\i}, {\o}ster, Stra\ss e", "Čech, Gödel, ça, í, øster, Straße"),
        (r"\emph{caf\'e} and \textbf{bold \emph{nested}}", "café and bold nested"),
        (r"10\% of R\&D, pages 3--7, A -- B, wait --- what", "10% of R&D, pages 3–7, A – B, wait — what"),
        (r"a ``quoted'' phrase and Fig.~1", "a “quoted” phrase and Fig.\u00a01"),
    ],
)  # fmt: skip
def test_text_mode_latex_reads_as_typeset(tex: str, shown: str) -> None:
    assert plain_text(tex) == shown


@pytest.mark.parametrize(
    "text",
    [
        r"with $\alpha_{\'e}$ and $x--y$ inside formulas",  # formulas are the MathML renderer's
        r"\foo{bar} and \cite{x} stay as written",  # an unknown command is not guessed at
        "https://example.org/~user/a--b and --flag and well-known",  # URLs, options, hyphens
        "plain text, nothing to do",
    ],
)
def test_what_is_not_text_mode_latex_is_left_alone(text: str) -> None:
    assert plain_text(text) == text


def test_an_escaped_dollar_is_a_dollar_not_a_formula() -> None:
    assert plain_text(r"costs \$5 and \$10") == "costs $5 and $10"
    out = str(render_tex(r"costs \$5 and \$10, and $\alpha$"))
    assert out.startswith("costs $5 and $10, and <math") and out.count("<math") == 1


def test_pages_and_snippets_show_it_escaped() -> None:
    out = str(render_tex(r"{\em R\'enyi} <b>bounds</b> for $\alpha$ \& more"))
    assert out.startswith("Rényi &lt;b&gt;bounds&lt;/b&gt; for <math") and out.endswith(" &amp; more")
    # the query's terms are folded and stemmed as the index's are ("Rényi" -> "renyi")
    assert "<mark>Rényi</mark>" in snippet(r"We bound the {\em R\'enyi} entropy.", ["renyi"])
    assert highlight(r"Erd\H{o}s--R\'enyi <graphs>", ["graph"]) == "Erdős–Rényi &lt;<mark>graphs</mark>&gt;"
