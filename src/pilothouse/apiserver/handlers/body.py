"""Request bodies: read within the size limit, decode, and check fields.

Field validation follows the ``fieldValidation`` directive as upstream does:
unknown and duplicate fields fail the request under ``Strict``, come back as
``Warning`` headers under ``Warn`` (the default) and pass silently under
``Ignore``; a value of the wrong type always fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from pilothouse.api import decode, errors, protobuf, resources, schema
from pilothouse.api.meta import Obj
from pilothouse.apiserver import negotiation

MAX_BODY_BYTES = 3 * 1024 * 1024


async def read(request: web.Request) -> bytes:
    """The whole body, or 413 when it is over the limit."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise errors.too_large(MAX_BODY_BYTES)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise errors.too_large(MAX_BODY_BYTES)
        chunks.append(chunk)
    return b"".join(chunks)


def parse(body: bytes, content_type: str, *, find_duplicates: bool) -> tuple[Any, list[str]]:
    """Decode JSON, YAML or protobuf; 415 for other media types, 400 for malformed input."""
    media = negotiation.body_type(content_type)
    if media == protobuf.MEDIA_TYPE:
        # Protobuf cannot repeat a field the way JSON can, so there are no duplicates.
        try:
            return protobuf.decode(body), []
        except protobuf.ProtobufError as exc:
            raise errors.bad_request(str(exc)) from None
    if not body.strip():
        raise errors.bad_request("the body of the request is empty")
    try:
        if media == negotiation.JSON:
            return decode.decode_json(body, find_duplicates=find_duplicates)
        if media == negotiation.YAML:
            return decode.decode_yaml(body, find_duplicates=find_duplicates)
    except decode.DecodeError as exc:
        raise errors.bad_request(str(exc)) from None
    raise errors.unsupported_media_type(
        content_type, ["application/json", "application/yaml", protobuf.MEDIA_TYPE]
    )


def decode_object(
    body: bytes,
    content_type: str,
    *,
    resource: resources.Resource,
    kind: str = "",
    api_version: str = "",
    field_validation: str,
    warnings: list[str],
    problems: Callable[[Obj], schema.FieldProblems | None] | None = None,
) -> Obj:
    """Decode a body meant to be an object of ``resource`` (or of ``kind`` in
    ``api_version`` for subresources), applying the field-validation directive.
    ``problems`` finds (and prunes) unknown fields where the built-in schemas cannot:
    custom resources."""
    kind = kind or resource.kind
    api_version = api_version or resource.api_version
    version = api_version.rpartition("/")[2]
    checking = field_validation in ("Strict", "Warn")
    value, duplicates = parse(body, content_type, find_duplicates=checking)
    if not isinstance(value, dict):
        raise errors.bad_request(
            f'{kind} in version "{version}" cannot be handled as a {kind}: '
            f"json: cannot unmarshal {_json_type(value)} into Go value of type struct"
        )
    got_version = value.get("apiVersion")
    got_kind = value.get("kind")
    if got_version is None or got_version == "":
        value["apiVersion"] = api_version
    elif not isinstance(got_version, str) or got_version != api_version:
        raise errors.bad_request(
            f"the API version in the data ({got_version}) does not match the expected API version ({api_version})"
        )
    if got_kind is None or got_kind == "":
        value["kind"] = kind
    elif got_kind != kind:
        raise errors.bad_request(
            f'{got_kind} in version "{version}" cannot be handled as a {kind}: '
            f'no kind "{got_kind}" is registered for version "{api_version}"'
        )
    if not isinstance(value.get("metadata", {}), dict):
        raise errors.bad_request(
            f'{kind} in version "{version}" cannot be handled as a {kind}: '
            f"json: cannot unmarshal {_json_type(value['metadata'])} into Go struct field "
            f"{kind}.metadata of type v1.ObjectMeta"
        )
    group = api_version.rpartition("/")[0]
    found = problems(value) if problems is not None else None
    if found is None:
        found = schema.field_problems(group, version, kind, value, prune=True)
    if found.type_errors:
        raise errors.bad_request(
            f'{kind} in version "{version}" cannot be handled as a {kind}: {found.type_errors[0]}'
        )
    if checking:
        strict = [f'unknown field "{p}"' for p in found.unknown]
        strict += [f'duplicate field "{p}"' for p in duplicates]
        if strict:
            if field_validation == "Strict":
                raise schema.strict_decoding_error(kind, version, strict)
            warnings.extend(strict)
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return "object"
