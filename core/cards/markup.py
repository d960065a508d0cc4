"""Person-written Markdown made safe for the two places a model card puts it.

* :func:`to_html` renders CommonMark (plus tables and strikethrough) with raw HTML
  escaped, images turned into plain links (a card never fetches anything) and links
  limited to ``http``, ``https``, ``mailto`` and in-page or relative targets.
* :func:`to_qmd` keeps the text as Markdown for a Quarto document, but neutralised
  so that nothing in it can run code, open a code chunk, expand a shortcode,
  include a file, inject metadata or pass raw HTML/TeX through Pandoc. Outside
  fenced code blocks the characters that start such constructs are backslash-escaped
  (Pandoc shows them literally); inside a fenced block only the Quarto-specific
  openers are broken up, so code examples stay readable.
* :func:`literal_md` escapes a data value (a column name, a category, a user name)
  so that Markdown shows it exactly as it is.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
# Schemes that execute or read on click; the .qmd copy breaks them up.
_UNSAFE_SCHEME = re.compile(r"(?i)\b(javascript|vbscript|livescript|data|file)(\s*):")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ZERO_WIDTH_SPACE = "\u200b"


def clean(text: Any) -> str:
    """Text with Unix newlines and no control characters (tabs and newlines stay)."""
    if text is None:
        return ""
    s = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", s)


# -- HTML -------------------------------------------------------------------------------


def _validate_link(url: str) -> bool:
    candidate = url.strip()
    # Browsers ignore these inside a URL, which would let "java\tscript:" through.
    candidate = re.sub(r"[\t\n\r\x00-\x20]", "", candidate)
    if not candidate:
        return False
    if candidate.startswith(("#", "/", "./", "../", "?")):
        return not candidate.startswith("//")
    try:
        scheme = urlsplit(candidate).scheme.lower()
    except ValueError:
        return False
    if not scheme:
        # a relative path such as "docs/model.md" (a colon would have made a scheme)
        return ":" not in candidate.split("/", 1)[0]
    return scheme in SAFE_SCHEMES


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    # An image would be fetched from wherever its URL points; shown as a link instead.
    md.disable("image")
    # markdown-it-py documents replacing validateLink on the instance; its types call it a method
    md.validateLink = _validate_link  # type: ignore[method-assign]
    return md


_MD = _parser()


def to_html(text: Any, heading_offset: int = 2) -> str:
    """Markdown written by a person as safe HTML.

    Headings are moved down by ``heading_offset`` levels (a ``#`` heading inside a
    card section becomes ``<h3>``), and links open without a referrer.
    """
    source = clean(text)
    if not source.strip():
        return ""
    tokens = _MD.parse(source)
    _adjust(tokens, heading_offset)
    return _MD.renderer.render(tokens, _MD.options, {})


def _adjust(tokens: list[Token], heading_offset: int) -> None:
    for token in tokens:
        if token.type in ("heading_open", "heading_close") and heading_offset:
            level = min(6, int(token.tag[1]) + heading_offset)
            token.tag = f"h{level}"
        elif token.type == "link_open":
            token.attrSet("rel", "noopener noreferrer nofollow")
        if token.children:
            _adjust(token.children, heading_offset)


# -- Quarto Markdown ----------------------------------------------------------------------

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_INFO_WORD = re.compile(r"[A-Za-z0-9_+-]+")
_THEMATIC = re.compile(r"^ {0,3}-{3,}[ \t]*$")
# Everything Pandoc or Quarto would act on rather than show, outside code:
#   \cmd   raw TeX            <tag  raw HTML, comments, autolinks
#   {      attributes, shortcodes ({{< include >}}), inline chunks (`{python}`), raw
#          attributes (`x`{=html})
#   &#..;  entities that could spell a scheme       $  math (MathJax)
#   ![     images, which Quarto would fetch or embed
_ESCAPES = re.compile(r"\\(?=[A-Za-z])|<(?=[A-Za-z/!?])|\{|&(?=#|[A-Za-z][A-Za-z0-9]*;)|\$|!(?=\[)")


def _fence_line(m: re.Match[str]) -> str:
    """A fence whose info string cannot make it an executable chunk or a raw block."""
    word = _INFO_WORD.search(m["info"].replace("{", " ").replace("=", " "))
    return f"{m['indent']}{m['fence']}{word.group(0) if word else ''}"


def _break_quarto_openers(line: str) -> str:
    # `{python} expr` (inline code) and {{< shortcode >}} need these exact adjacencies.
    line = re.sub(r"`(?=\{)", "` ", line)
    return re.sub(r"\{\{(?=[<%])", "{{ ", line)


def _escape_markdown(line: str) -> str:
    line = _ESCAPES.sub(lambda m: "\\" + m.group(0), line)
    return _UNSAFE_SCHEME.sub(lambda m: f"{m[1]}{m[2]}{ZERO_WIDTH_SPACE}:", line)


def _closing_fence(line: str, char: str, length: int) -> bool:
    stripped = line.strip()
    return (len(stripped) >= length and set(stripped) == {char})


def _trusted_fence_end(lines: list[str], start: int, char: str, length: int) -> int | None:
    for j in range(start + 1, len(lines)):
        if _closing_fence(lines[j], char, length):
            return j
    return None


def to_qmd(text: Any) -> str:
    """Markdown written by a person, safe to place in a ``.qmd`` document.

    A fenced code block is left verbatim (apart from the Quarto openers) only when
    Pandoc cannot read it as anything else: the fence starts a line after a blank
    line and is closed later. Everything else is escaped, so when in doubt the text
    is shown, never interpreted.
    """
    lines = clean(text).split("\n")
    out: list[str] = []
    fence_end: int | None = None
    previous_blank = True
    for i, line in enumerate(lines):
        if fence_end is not None:
            if i == fence_end:
                fence_end = None
            m = _FENCE.match(line)
            out.append(_break_quarto_openers(_fence_line(m) if m else line))
            previous_blank = False
            continue
        m = _FENCE.match(line)
        if m:
            if previous_blank and not m["indent"]:
                fence_end = _trusted_fence_end(lines, i, m["fence"][0], len(m["fence"]))
            safe = _fence_line(m)
            if fence_end is None:
                # not a block we can vouch for: make it plain text, so an unclosed
                # fence cannot swallow the rest of the document
                safe = _escape_markdown(f"{m['indent']}\\{safe[len(m['indent']):]}")
            out.append(safe)
        elif previous_blank and _THEMATIC.match(line):
            # "---" after a blank line could open a YAML metadata block in Pandoc.
            out.append("* * *")
        else:
            out.append(_escape_markdown(line))
        previous_blank = not line.strip()
    return "\n".join(out)


# Every ASCII punctuation character: Pandoc and CommonMark show "\x" as a literal x.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def literal_md(value: Any, *, max_chars: int = 500) -> str:
    """A data value for Markdown prose or a table cell, shown exactly as it is."""
    s = clean(value).replace("\n", " ").replace("\t", " ")
    if len(s) > max_chars:
        s = s[: max_chars - 1] + "…"
    s = _PUNCTUATION.sub(r"\\\1", s)
    return _UNSAFE_SCHEME.sub(lambda m: f"{m[1]}{m[2]}{ZERO_WIDTH_SPACE}:", s)
