"""The ECMAScript literals SCXML files carry (`<content expr>`, `cond`), written and read back.

Only data JSON can hold: null, booleans, finite numbers, strings, arrays and objects with string
keys. Strings are written single-quoted and object keys bare where they are names; the reader
takes either quote and bare or quoted keys, and refuses anything else (an expression, a
function call, a variable) with `LiteralSyntaxError` saying where.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import LiteralSyntaxError

JS_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def js_string(text: str) -> str:
    """A single-quoted ECMAScript string literal."""
    out = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return "'" + out + "'"


def js_key(name: str) -> str:
    """An object key: bare when it is a name, quoted otherwise."""
    return name if JS_NAME.match(name) else js_string(name)


def js_literal(value: object) -> str | None:
    """`value` as an ECMAScript literal, or None when JSON's data cannot hold it."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int | float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return js_string(value)
    if isinstance(value, list | tuple):
        items = [js_literal(v) for v in value]
        return None if None in items else "[" + ", ".join(i for i in items if i is not None) + "]"
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        pairs = [(js_key(k), js_literal(v)) for k, v in value.items()]
        return None if any(v is None for _, v in pairs) else "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


def parse_literal(text: str) -> Any:
    """The value of an ECMAScript literal (arrays come back as lists, objects as dicts)."""
    reader = _Reader(text)
    value = reader.value()
    reader.skip()
    if reader.pos != len(text):
        reader.fail("unexpected text after the literal")
    return value


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, why: str) -> None:
        raise LiteralSyntaxError(f"{why} at character {self.pos + 1} of {self.text!r}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def value(self) -> Any:
        c = self.peek()
        if c in ("'", '"'):
            return self.string()
        if c == "[":
            return self.items("]", self.value)
        if c == "{":
            return dict(self.items("}", self.pair))
        number = _NUMBER.match(self.text, self.pos)
        if number:
            self.pos = number.end()
            word = number.group()
            return float(word) if any(ch in word for ch in ".eE") else int(word)
        name = _NAME.match(self.text, self.pos)
        if name and name.group() in ("null", "true", "false"):
            self.pos = name.end()
            return {"null": None, "true": True, "false": False}[name.group()]
        self.fail("expected null, true, false, a number, a string, an array or an object")

    def items(self, close: str, item: Any) -> list[Any]:
        self.pos += 1
        out: list[Any] = []
        if self.peek() == close:
            self.pos += 1
            return out
        while True:
            out.append(item())
            c = self.peek()
            self.pos += 1
            if c == close:
                return out
            if c != ",":
                self.pos -= 1
                self.fail(f"expected ',' or {close!r}")

    def pair(self) -> tuple[str, Any]:
        c = self.peek()
        if c in ("'", '"'):
            key = self.string()
        else:
            name = _NAME.match(self.text, self.pos)
            if not name:
                self.fail("expected an object key")
            assert name is not None
            key = name.group()
            self.pos = name.end()
        if self.peek() != ":":
            self.fail("expected ':' after an object key")
        self.pos += 1
        return key, self.value()

    def string(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            self.pos += 1
            if c == quote:
                return "".join(out)
            if c == "\\" and self.pos < len(self.text):
                c = self.text[self.pos]
                self.pos += 1
                if c == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", self.text[self.pos : self.pos + 4]):
                    out.append(chr(int(self.text[self.pos : self.pos + 4], 16)))
                    self.pos += 4
                    continue
                out.append(_ESCAPES.get(c, c))
                continue
            out.append(c)
        self.fail("unterminated string")
        return ""
