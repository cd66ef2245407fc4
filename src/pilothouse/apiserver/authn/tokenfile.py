"""``--token-auth-file``: static bearer tokens from upstream's CSV.

Each record is ``token,user,uid[,"group1,group2"]`` (more columns are ignored).
The file is read once at start, as kube-apiserver reads it; a record with fewer
than three columns fails the start with upstream's message.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from pilothouse.apiserver.authn import user as user_module

log = logging.getLogger(__name__)


class TokenFileError(Exception):
    """The token file cannot be used; the message says why."""


class TokenFile:
    """Token → user, from a CSV file."""

    def __init__(self, tokens: dict[str, user_module.UserInfo]) -> None:
        self._tokens = tokens

    @classmethod
    def load(cls, path: Path) -> TokenFile:
        tokens: dict[str, user_module.UserInfo] = {}
        try:
            text = path.read_text()
        except OSError as exc:
            raise TokenFileError(f"open {path}: {exc.strerror or exc}") from None
        number = 0
        for record in csv.reader(text.splitlines()):
            if not record:
                continue
            if len(record) < 3:
                raise TokenFileError(
                    f"token file '{path}' must have at least 3 columns (token, user name, "
                    f"user uid), found {len(record)}"
                )
            number += 1
            token, name, uid = record[0], record[1], record[2]
            if not token:
                log.warning(
                    "empty token has been found in token file '%s', record number '%d'",
                    path,
                    number,
                )
                continue
            if token in tokens:
                log.warning(
                    "duplicate token has been found in token file '%s', record number '%d'",
                    path,
                    number,
                )
            groups = tuple(record[3].split(",")) if len(record) >= 4 else ()
            tokens[token] = user_module.UserInfo(name, groups, uid)
        return cls(tokens)

    def authenticate(self, token: str) -> user_module.UserInfo | None:
        return self._tokens.get(token)

    def __len__(self) -> int:
        return len(self._tokens)
