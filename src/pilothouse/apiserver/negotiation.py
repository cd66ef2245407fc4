"""Content negotiation: what a client accepts, and what its body is written in.

``kubectl get`` asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` first
and plain JSON last; metadata informers ask for ``as=PartialObjectMetadata``;
some clients prefer protobuf, which we do not speak, so we fall through to the
next type they accept. A request that accepts nothing we produce gets 406.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from pilothouse.api import errors

JSON = "application/json"
YAML = "application/yaml"

# Body content types, by verb family.
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)
BODY_TYPES = (JSON, YAML)


@dataclass(frozen=True, slots=True)
class Output:
    """How to render a response: ``form`` is object, table or metadata."""

    media_type: str = JSON  # application/json or application/yaml
    form: str = "object"  # object | table | metadata
    version: str = "v1"  # of the meta.k8s.io form (Table, PartialObjectMetadata)


DEFAULT_OUTPUT = Output()


def _params(part: str) -> tuple[str, dict[str, str]]:
    fields = [f.strip() for f in part.split(";")]
    media = fields[0].lower()
    params: dict[str, str] = {}
    for f in fields[1:]:
        key, sep, value = f.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip()
    return media, params


def negotiate(accept: str | None, *, allow_table: bool = True) -> Output:
    """Choose the first acceptable output form in the client's order of preference."""
    if not accept:
        return DEFAULT_OUTPUT
    for part in accept.split(","):
        if not part.strip():
            continue
        media, params = _params(part)
        if params.get("q") == "0":
            continue
        if media in ("application/json", "application/*", "*/*", "application/json;stream=watch"):
            media_type = JSON
        elif media == "application/yaml":
            media_type = YAML
        else:
            continue
        as_ = params.get("as")
        if as_ is None:
            return Output(media_type, "object")
        if params.get("g") != "meta.k8s.io" or params.get("v") not in ("v1", "v1beta1"):
            continue
        if as_ == "Table" and allow_table:
            return Output(media_type, "table", params["v"])
        if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            return Output(media_type, "metadata", params["v"])
    raise errors.not_acceptable(accept)


def body_type(content_type: str | None) -> str:
    """The media type of a request body, without parameters (``charset``…)."""
    if not content_type:
        return JSON
    return content_type.split(";", 1)[0].strip().lower()


def encode(value: Any, media_type: str = JSON) -> bytes:
    """A response body. JSON ends with a newline, as upstream's serializer writes
    it (Go's ``json.Encoder``); clients and tests compare bodies byte for byte."""
    if media_type == YAML:
        return yaml.safe_dump(value, sort_keys=False, default_flow_style=False).encode()
    return orjson.dumps(value) + b"\n"


def status_body(err: errors.StatusError, media_type: str = JSON) -> bytes:
    """The ``metav1.Status`` body of an error."""
    return encode(err.status(), media_type)
