"""A small XML element tree that remembers the line of every element (for import errors).

`xml.etree` forgets where an element was; expat, which it is built on, knows. Namespaces are
resolved: an element's `ns` and `tag` are its namespace URI and local name, an attribute of no
namespace is keyed by its name and one of a namespace by `{uri}name`. Comments are kept in
document order among the children. A document type declaration (and so any entity definition)
is refused: SCXML needs none, and entities are how XML bombs are built.
"""

from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass, field

from .errors import ScxmlImportError


@dataclass(slots=True)
class Comment:
    text: str
    line: int


@dataclass(slots=True)
class Element:
    ns: str
    tag: str
    attrs: dict[str, str]
    line: int
    children: list[Element | Comment] = field(default_factory=list)
    text: str = ""

    @property
    def elements(self) -> list[Element]:
        return [c for c in self.children if isinstance(c, Element)]

    def leading_comment(self, skip_ns: str = "") -> str:
        """The text of the comments before the first child element (a state's doc); elements of
        namespace `skip_ns` (an editor's layout) do not count."""
        out: list[str] = []
        for child in self.children:
            if isinstance(child, Element):
                if skip_ns and child.ns == skip_ns:
                    continue
                break
            out.append(child.text.strip())
        return " ".join(t for t in out if t)


def _split(name: str) -> tuple[str, str]:
    uri, sep, local = name.rpartition(" ")
    return (uri, local) if sep else ("", name)


def parse(text: str) -> Element:
    """The document's root element; `ScxmlImportError` (with the line) when it is not well-formed."""
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    stack: list[Element] = []
    root: list[Element] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        ns, tag = _split(name)
        keyed = {}
        for key, value in attrs.items():
            a_ns, a_name = _split(key)
            keyed[f"{{{a_ns}}}{a_name}" if a_ns else a_name] = value
        el = Element(ns, tag, keyed, parser.CurrentLineNumber)
        if stack:
            stack[-1].children.append(el)
        else:
            root.append(el)
        stack.append(el)

    def end(name: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        if stack:
            stack[-1].text += data

    def comment(data: str) -> None:
        if stack:
            stack[-1].children.append(Comment(data, parser.CurrentLineNumber))

    def doctype(*_: object) -> None:
        raise ScxmlImportError(parser.CurrentLineNumber, "", "a document type declaration is not allowed in SCXML here")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    parser.CommentHandler = comment
    parser.StartDoctypeDeclHandler = doctype
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as exc:
        why = xml.parsers.expat.ErrorString(exc.code)
        raise ScxmlImportError(exc.lineno, "", f"not well-formed XML: {why}") from None
    if not root:
        raise ScxmlImportError(0, "", "the document has no root element")
    return root[0]
