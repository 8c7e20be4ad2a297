r"""MkDocs hook: render the maths of the pages as MathML when the site is built.

`pymdownx.arithmatex` (generic mode) marks `$...$` and `$$...$$` in the Markdown
sources as `<span class="arithmatex">\(...\)</span>` and
`<div class="arithmatex">\[...\]</div>`. This hook replaces each by the MathML
that `latex2mathml` produces, which browsers render natively: the site needs no
JavaScript and no network to show its formulas (MathJax and KaTeX would be
loaded from a CDN). A formula that cannot be converted fails the build.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

_MATH = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*'
    r"\\(?P<open>[(\[])(?P<tex>.*?)\\(?P<close>[)\]])\s*</(?P=tag)>",
    re.S,
)
# latex2mathml writes \sim as an ASCII tilde in an <mi>; the relation is U+223C.
_FIXES = {
    "<mi>&#x0007E;</mi>": '<mo lspace="0.28em" rspace="0.28em">&#x0223C;</mo>'
}


def _render(match: re.Match[str]) -> str:
    tex = html.unescape(match["tex"]).strip()
    block = match["tag"] == "div"
    mathml = convert(tex, display="block" if block else "inline")
    for old, new in _FIXES.items():
        mathml = mathml.replace(old, new)
    cls = "arithmatex arithmatex-block" if block else "arithmatex"
    tag = match["tag"]
    return f'<{tag} class="{cls}">{mathml}</{tag}>'


def render_math(page_html: str) -> str:
    """Returns `page_html` with every arithmatex formula replaced by MathML."""
    return _MATH.sub(_render, page_html)


def on_page_content(content: str, **kwargs) -> str:
    """MkDocs event: the page's HTML, after Markdown, before the theme."""
    return render_math(content)
