"""MkDocs hook (mkdocs.yml `hooks:`): docstrings write tensor shapes as `[P][n]` or `[B, K]`, which Markdown reads as
a reference link and mkdocs-autorefs as a cross-reference to an object named `n`. A target of at most three
characters is never an API object here, so such a reference is put back as the text it was written as."""

from __future__ import annotations

import re

_SHAPE_REF = re.compile(r'<autoref\b[^>]*?\bidentifier="([^"]{1,3})"[^>]*>(.*?)</autoref>', re.S)


def on_page_content(html: str, **kwargs) -> str:
    return _SHAPE_REF.sub(lambda m: f"[{m[2]}][{m[1]}]", html)
