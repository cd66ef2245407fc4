"""Go-worded JSON syntax errors.

Python's JSON parsers and Go's ``encoding/json`` reject the same documents but
word the reason differently, and users compare what pilothouse says with what
Kubernetes says. :func:`syntax_error` re-scans a document that failed to parse
with a small state machine shaped like Go's ``encoding/json`` scanner and
returns the message Go would give (``invalid character '}' looking for
beginning of object key string``, ``unexpected end of JSON input``), or
``None`` when Go would accept the text.

It runs only on the error path, so it favours clarity over speed.
No I/O here: this module is part of the bottom ``api`` layer.
"""

from __future__ import annotations

import unicodedata

MAX_DEPTH = 10000  # Go's maxNestingDepth
_WS = frozenset(b" \t\r\n")
_DIGITS = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = frozenset(b'bfnrt\\/"')

# What the parser expects next inside a container (Go's parseState values).
_OBJECT_KEY, _OBJECT_VALUE, _ARRAY_VALUE = 0, 1, 2

# Literal states: (remaining letters, literal name).
_LITERALS = {ord("t"): "true", ord("f"): "false", ord("n"): "null"}


def quote_char(c: int) -> str:
    """A byte the way Go's scanner quotes it in messages (``'}'``, ``'\\n'``)."""
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    char = chr(c)  # Go widens the byte to the rune U+00XX.
    simple = {
        "\a": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\v": "\\v",
        "\\": "\\\\",
    }
    if char in simple:
        return f"'{simple[char]}'"
    if c < 0x20 or c == 0x7F:
        return f"'\\x{c:02x}'"
    if unicodedata.category(char)[0] in "CZ" and char != " ":
        return f"'\\u{c:04x}'"
    return f"'{char}'"


class _Scanner:
    """One pass of Go's scanner state machine over a byte string."""

    def __init__(self) -> None:
        self.stack: list[int] = []
        self.state = "begin_value"
        self.literal = ""  # letters still expected in true/false/null
        self.literal_name = ""
        self.hex_left = 0
        self.end_top = False

    def error(self, c: int, context: str) -> str:
        return f"invalid character {quote_char(c)} {context}"

    def step(self, c: int) -> str | None:
        state = self.state
        if state == "begin_value_or_empty":
            if c in _WS:
                return None
            if c == ord("]"):
                return self.end_value(c)
            return self.begin_value(c)
        if state == "begin_value":
            return self.begin_value(c)
        if state == "begin_string_or_empty":
            if c in _WS:
                return None
            if c == ord("}"):
                self.stack[-1] = _OBJECT_VALUE
                return self.end_value(c)
            return self.begin_string(c)
        if state == "begin_string":
            return self.begin_string(c)
        if state == "end_value":
            return self.end_value(c)
        if state == "end_top":
            if c not in _WS:
                return self.error(c, "after top-level value")
            return None
        if state == "in_string":
            if c == ord('"'):
                self.state = "end_value"
            elif c == ord("\\"):
                self.state = "in_string_esc"
            elif c < 0x20:
                return self.error(c, "in string literal")
            return None
        if state == "in_string_esc":
            if c in _ESCAPES:
                self.state = "in_string"
            elif c == ord("u"):
                self.state, self.hex_left = "in_string_esc_u", 4
            else:
                return self.error(c, "in string escape code")
            return None
        if state == "in_string_esc_u":
            if c not in _HEX:
                return self.error(c, "in \\u hexadecimal character escape")
            self.hex_left -= 1
            if not self.hex_left:
                self.state = "in_string"
            return None
        if state == "neg":
            if c == ord("0"):
                self.state = "zero"
            elif c in _DIGITS:
                self.state = "int"
            else:
                return self.error(c, "in numeric literal")
            return None
        if state == "int":
            if c in _DIGITS:
                return None
            return self.after_int(c)
        if state == "zero":
            return self.after_int(c)
        if state == "dot":
            if c in _DIGITS:
                self.state = "dot_digits"
                return None
            return self.error(c, "after decimal point in numeric literal")
        if state == "dot_digits":
            if c in _DIGITS:
                return None
            if c in b"eE":
                self.state = "exp"
                return None
            return self.end_value(c)
        if state == "exp":
            if c in b"+-":
                self.state = "exp_sign"
                return None
            return self.exp_sign(c)
        if state == "exp_sign":
            return self.exp_sign(c)
        if state == "exp_digits":
            if c in _DIGITS:
                return None
            return self.end_value(c)
        if state == "literal":
            want = self.literal[0]
            if c != ord(want):
                return self.error(c, f"in literal {self.literal_name} (expecting '{want}')")
            self.literal = self.literal[1:]
            if not self.literal:
                self.state = "end_value"
            return None
        raise AssertionError(state)  # pragma: no cover

    def begin_value(self, c: int) -> str | None:
        if c in _WS:
            self.state = "begin_value"
            return None
        if c == ord("{"):
            self.stack.append(_OBJECT_KEY)
            self.state = "begin_string_or_empty"
            if len(self.stack) > MAX_DEPTH:
                return self.error(c, "exceeded max depth")
        elif c == ord("["):
            self.stack.append(_ARRAY_VALUE)
            self.state = "begin_value_or_empty"
            if len(self.stack) > MAX_DEPTH:
                return self.error(c, "exceeded max depth")
        elif c == ord('"'):
            self.state = "in_string"
        elif c == ord("-"):
            self.state = "neg"
        elif c == ord("0"):
            self.state = "zero"
        elif c in _DIGITS:
            self.state = "int"
        elif c in _LITERALS:
            self.literal_name = _LITERALS[c]
            self.literal = self.literal_name[1:]
            self.state = "literal"
        else:
            return self.error(c, "looking for beginning of value")
        return None

    def begin_string(self, c: int) -> str | None:
        if c in _WS:
            self.state = "begin_string"
            return None
        if c == ord('"'):
            self.state = "in_string"
            return None
        return self.error(c, "looking for beginning of object key string")

    def after_int(self, c: int) -> str | None:
        if c == ord("."):
            self.state = "dot"
            return None
        if c in b"eE":
            self.state = "exp"
            return None
        return self.end_value(c)

    def exp_sign(self, c: int) -> str | None:
        if c in _DIGITS:
            self.state = "exp_digits"
            return None
        return self.error(c, "in exponent of numeric literal")

    def end_value(self, c: int) -> str | None:
        if not self.stack:
            self.state = "end_top"
            self.end_top = True
            if c not in _WS:
                return self.error(c, "after top-level value")
            return None
        self.state = "end_value"
        if c in _WS:
            return None
        top = self.stack[-1]
        if top == _OBJECT_KEY:
            if c == ord(":"):
                self.stack[-1] = _OBJECT_VALUE
                self.state = "begin_value"
                return None
            return self.error(c, "after object key")
        if top == _OBJECT_VALUE:
            if c == ord(","):
                self.stack[-1] = _OBJECT_KEY
                self.state = "begin_string"
                return None
            if c == ord("}"):
                self.stack.pop()
                self.end_value_after_pop()
                return None
            return self.error(c, "after object key:value pair")
        if c == ord(","):
            self.state = "begin_value"
            return None
        if c == ord("]"):
            self.stack.pop()
            self.end_value_after_pop()
            return None
        return self.error(c, "after array element")

    def end_value_after_pop(self) -> None:
        if not self.stack:
            self.state = "end_top"
            self.end_top = True
        else:
            self.state = "end_value"


def syntax_error(data: bytes) -> str | None:
    """Go's ``json.Unmarshal`` syntax error for ``data``, or None if Go accepts it."""
    scanner = _Scanner()
    for c in data:
        message = scanner.step(c)
        if message is not None:
            return message
    if scanner.end_top:
        return None
    # Go feeds one space at the end; an error there wins over "unexpected end".
    message = scanner.step(ord(" "))
    if message is not None:
        return message
    if scanner.end_top:
        return None
    return "unexpected end of JSON input"
