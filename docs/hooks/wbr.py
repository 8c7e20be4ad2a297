"""MkDocs hook: long identifiers in table cells may break after `.` and `_`.

The site's CSS keeps code in table cells from breaking inside identifiers
and numbers (`extra.css`), so a long name such as
`jaxnn.softmax_cross_entropy_with_integer_labels` widens its column until
the table scrolls sideways. This hook puts a `<wbr>` (a line-break
opportunity, invisible otherwise) after each `_`, and each `.` before a
letter (not the `.` of a number), of inline code inside `<td>` cells, so
such names wrap at their joints instead.
"""

from __future__ import annotations

import re

_CELL = re.compile(r"<td>(.*?)</td>", re.S)
_CODE = re.compile(r"<code>([^<]*)</code>")


def _code(match: re.Match[str]) -> str:
    text = re.sub(r"(\.(?=[A-Za-z_])|_(?=\w))", r"\1<wbr>", match[1])
    return f"<code>{text}</code>"


def _cell(match: re.Match[str]) -> str:
    return "<td>" + _CODE.sub(_code, match[1]) + "</td>"


def on_page_content(content: str, **kwargs) -> str:
    """MkDocs event: the page's HTML, after Markdown, before the theme."""
    return _CELL.sub(_cell, content)
