"""CEL source text to tokens, and string and bytes literals to their values.

The lexical grammar of cel-spec: numbers (decimal, hex, ``u`` suffixes, floats),
strings in single, double and triple quotes with raw (``r''``) and bytes (``b''``)
prefixes and CEL's escapes, identifiers and operators, including the ``.?`` and
``[?`` of cel-go's optional syntax.

No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class SyntaxErrorCEL(ValueError):
    """A CEL expression that does not parse; ``offset`` points into the source."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


# --- tokens -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n\f]+|//[^\n]*)
  | (?P<float>(?:\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?))
  | (?P<hex>0[xX][0-9a-fA-F]+[uU]?)
  | (?P<int>\d+[uU]?)
  | (?P<string>[rRbB]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|\.\?|\[\?|[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE,
)


@dataclass(slots=True)
class Token:
    kind: str  # float int string ident op eof
    text: str
    pos: int


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise SyntaxErrorCEL(f"Syntax error: token recognition error at: '{source[pos]}'", pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            if kind == "hex":
                kind = "int"
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("eof", "", len(source)))
    return tokens


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}


def _unescape(body: str, pos: int, *, raw: bool, as_bytes: bool) -> str | bytes:
    if raw:
        return body.encode() if as_bytes else body
    out: list[str] = []
    raw_bytes = bytearray()
    i = 0

    def emit(text: str) -> None:
        if as_bytes:
            raw_bytes.extend(text.encode())
        else:
            out.append(text)

    while i < len(body):
        ch = body[i]
        if ch != "\\":
            emit(ch)
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise SyntaxErrorCEL("Syntax error: invalid escape sequence", pos)
        esc = body[i]
        if esc in _ESCAPES:
            emit(_ESCAPES[esc])
            i += 1
        elif esc in "xX":
            code = body[i + 1 : i + 3]
            if not re.fullmatch(r"[0-9a-fA-F]{2}", code):
                raise SyntaxErrorCEL("Syntax error: invalid escape sequence", pos)
            if as_bytes:
                raw_bytes.append(int(code, 16))
            else:
                out.append(chr(int(code, 16)))
            i += 3
        elif esc in "uU":
            width = 4 if esc == "u" else 8
            code = body[i + 1 : i + 1 + width]
            if as_bytes or not re.fullmatch(f"[0-9a-fA-F]{{{width}}}", code):
                raise SyntaxErrorCEL("Syntax error: invalid escape sequence", pos)
            value = int(code, 16)
            if 0xD800 <= value <= 0xDFFF or value > 0x10FFFF:
                raise SyntaxErrorCEL("Syntax error: invalid unicode code point", pos)
            out.append(chr(value))
            i += 1 + width
        elif esc in "0123":
            code = body[i : i + 3]
            if not re.fullmatch(r"[0-3][0-7]{2}", code):
                raise SyntaxErrorCEL("Syntax error: invalid escape sequence", pos)
            if as_bytes:
                raw_bytes.append(int(code, 8))
            else:
                out.append(chr(int(code, 8)))
            i += 3
        else:
            raise SyntaxErrorCEL("Syntax error: invalid escape sequence", pos)
    return bytes(raw_bytes) if as_bytes else "".join(out)


def string_literal(tok: Token) -> tuple[str | bytes, str]:
    text = tok.text
    prefix = ""
    while text[0] in "rRbB":
        prefix += text[0].lower()
        text = text[1:]
    quote = 3 if text[:3] in ('"""', "'''") else 1
    body = text[quote:-quote]
    value = _unescape(body, tok.pos, raw="r" in prefix, as_bytes="b" in prefix)
    return value, "bytes" if "b" in prefix else "string"
