"""The patch engines of the API server: pure functions from an object and a patch.

* :func:`apply_json_patch` — ``application/json-patch+json`` (RFC 6902, with the
  quirks of the evanphx/json-patch v4 library upstream uses), :mod:`.jsonpatch`;
* :func:`apply_merge_patch` — ``application/merge-patch+json`` (RFC 7386),
  :mod:`.mergepatch`;
* :func:`apply_strategic_merge_patch` — ``application/strategic-merge-patch+json``,
  merge keys and strategies from the kind's 1.32 schema, :mod:`.strategic`.

Each takes the stored object and the decoded patch body and returns a new
object, changing neither. A patch that cannot be decoded or applied raises
:class:`PatchError`, which knows the status the API server answers
(``err.code``, ``err.status_error()``)::

    from pilothouse.api import patch
    try:
        updated = patch.apply_strategic_merge_patch(
            stored, body, group="apps", version="v1", kind="Deployment"
        )
    except patch.PatchError as err:
        raise err.status_error() from err

What comes after the patch — decoding the result as the kind (unknown fields,
wrong types), defaulting, validation — is the caller's, as it is upstream's
handler's.

No I/O here: this package is part of the bottom ``api`` layer.
"""

from pilothouse.api.patch.errors import PatchError
from pilothouse.api.patch.jsonpatch import apply_json_patch
from pilothouse.api.patch.jsonpatch import strict_problems as json_patch_strict_problems
from pilothouse.api.patch.mergepatch import apply_merge_patch
from pilothouse.api.patch.strategic import (
    UNSUPPORTED_MEDIA_TYPE,
    apply_strategic_merge_patch,
    strategic_merge_supported,
)

__all__ = [
    "UNSUPPORTED_MEDIA_TYPE",
    "PatchError",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "json_patch_strict_problems",
    "strategic_merge_supported",
]
