"""Parameters, media types and responses of the ``/openapi/v3`` operations.

The parameters kube-apiserver lists for each kind of operation (list options,
create/update options, patch options, delete options, log and connect options),
with short descriptions of our own. Every parameter is a plain dict shared by
all operations that list it; the documents are encoded once and cached.
"""

from __future__ import annotations

from typing import Any

OBJECT_MEDIA = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
STREAM_MEDIA = (
    *OBJECT_MEDIA,
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
)
PATCH_MEDIA = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def query(name: str, kind: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "in": "query",
        "name": name,
        "schema": {"type": kind, "uniqueItems": True},
    }


def path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "in": "path",
        "name": name,
        "required": True,
        "schema": {"type": "string", "uniqueItems": True},
    }


P = {
    "pretty": query("pretty", "string", "If 'true', then the output is pretty printed."),
    "dryRun": query(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values are: "
        "- All: all dry run stages will be processed",
    ),
    "fieldManager": query(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes.",
    ),
    "fieldValidation": query(
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) "
        "containing unknown or duplicate fields. Valid values are: - Ignore: unknown fields are dropped "
        "and the last of duplicate fields wins, silently. - Warn (the default): the same, with a warning "
        "for each unknown and duplicate field. - Strict: the request fails with a BadRequest error "
        "listing every unknown and duplicate field.",
    ),
    "force": query(
        "force",
        "boolean",
        'Force is going to "force" Apply requests: the caller re-acquires fields other managers own. '
        "It must be unset for non-apply patch requests.",
    ),
    "allowWatchBookmarks": query(
        "allowWatchBookmarks",
        "boolean",
        'allowWatchBookmarks requests watch events with type "BOOKMARK".',
    ),
    "continue": query(
        "continue",
        "string",
        "The continue token of a previous list call, to fetch the next page of results.",
    ),
    "fieldSelector": query(
        "fieldSelector",
        "string",
        "A selector to restrict the list of returned objects by their fields.",
    ),
    "labelSelector": query(
        "labelSelector",
        "string",
        "A selector to restrict the list of returned objects by their labels.",
    ),
    "limit": query(
        "limit", "integer", "limit is a maximum number of responses to return for a list call."
    ),
    "resourceVersion": query(
        "resourceVersion",
        "string",
        "resourceVersion sets a constraint on what resource versions a request may be served from.",
    ),
    "resourceVersionMatch": query(
        "resourceVersionMatch",
        "string",
        "resourceVersionMatch determines how resourceVersion is applied to list calls.",
    ),
    "sendInitialEvents": query(
        "sendInitialEvents",
        "boolean",
        "With watch=true, start the watch stream with synthetic events for the current objects, "
        "followed by a bookmark.",
    ),
    "timeoutSeconds": query(
        "timeoutSeconds",
        "integer",
        "Timeout for the list/watch call, regardless of any activity or inactivity.",
    ),
    "watch": query(
        "watch",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of events.",
    ),
    "gracePeriodSeconds": query(
        "gracePeriodSeconds",
        "integer",
        "The duration in seconds before the object should be deleted.",
    ),
    "ignoreStoreReadErrorWithClusterBreakingPotential": query(
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        "boolean",
        "If set to true, an object that cannot be read from storage is deleted anyway (unsafe).",
    ),
    "orphanDependents": query(
        "orphanDependents",
        "boolean",
        "Deprecated: use propagationPolicy. Should the dependent objects be orphaned.",
    ),
    "propagationPolicy": query(
        "propagationPolicy",
        "string",
        "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
    ),
}
PATCH_FIELD_MANAGER = query(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes. "
    "It is required for apply requests (application/apply-patch) and optional otherwise.",
)
LIST_PARAMS = [
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
]
WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
DELETE_PARAMS = (
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
)
COLLECTION_DELETE_PARAMS = (
    *DELETE_PARAMS,
    *(p for p in LIST_PARAMS if p not in ("watch", "allowWatchBookmarks")),
)


def boolean(name: str, description: str) -> dict[str, Any]:
    return query(name, "boolean", description)


LOG_PARAMS = [
    query("container", "string", "The container for which to stream logs."),
    boolean("follow", "Follow the log stream of the pod."),
    boolean(
        "insecureSkipTLSVerifyBackend", "Skip verifying the serving certificate of the backend."
    ),
    query(
        "limitBytes",
        "integer",
        "The number of bytes to read from the server before terminating the log output.",
    ),
    boolean("previous", "Return previous terminated container logs."),
    query(
        "sinceSeconds",
        "integer",
        "A relative time in seconds before the current time from which to show logs.",
    ),
    query("stream", "string", "Which container log stream to return: All, Stdout or Stderr."),
    query("tailLines", "integer", "The number of lines from the end of the logs to show."),
    boolean("timestamps", "Prefix every line of log output with an RFC3339 timestamp."),
]
_STREAMS = [
    boolean("stderr", "Redirect the standard error stream of the pod for this call."),
    boolean("stdin", "Redirect the standard input stream of the pod for this call."),
    boolean("stdout", "Redirect the standard output stream of the pod for this call."),
    boolean("tty", "TTY if true indicates that a tty will be allocated for the call."),
]
CONNECT_PARAMS = {
    "exec": [
        query("command", "string", "Command is the remote command to execute; argv array."),
        query("container", "string", "Container in which to execute the command."),
        *_STREAMS,
    ],
    "attach": [query("container", "string", "The container in which to attach."), *_STREAMS],
    "portforward": [query("ports", "integer", "List of ports to forward.")],
    "proxy": [
        query("path", "string", "Path is the URL path to use for the current proxy request.")
    ],
}


def content(ref: str, media: tuple[str, ...]) -> dict[str, Any]:
    return {m: {"schema": {"$ref": "#/components/schemas/" + ref}} for m in media}


def responses(
    ref: str, codes: tuple[str, ...], media: tuple[str, ...] = OBJECT_MEDIA
) -> dict[str, Any]:
    names = {"200": "OK", "201": "Created", "202": "Accepted"}
    out: dict[str, Any] = {
        code: {"content": content(ref, media), "description": names[code]} for code in codes
    }
    out["401"] = {"description": "Unauthorized"}
    return out


def string_responses(media: tuple[str, ...]) -> dict[str, Any]:
    content = {m: {"schema": {"type": "string"}} for m in media}
    return {
        "200": {"content": content, "description": "OK"},
        "401": {"description": "Unauthorized"},
    }
