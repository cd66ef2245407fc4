"""``pilothouse history KIND/NAME``: every stored revision of an object.

Reads ``GET /history/<the object's path>`` from the API server with the user's
kubeconfig (the request is authorized as a GET of the object), then prints a
table of revisions, unified YAML diffs (``--diff``), or the whole object as it was
at a time or resourceVersion (``--at``). Deleted objects' history stays readable
for the server's retention window. One request; the rest is formatting here.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import difflib
import os
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from pilothouse.api import errors, resources
from pilothouse.cli import kubectl
from pilothouse.client import config as client_config
from pilothouse.client import rest

EPILOG = """\
examples:
  pilothouse history deployment/web                 revisions of a Deployment in default
  pilothouse history deploy/web --diff              what each revision changed (unified YAML)
  pilothouse history deploy/web --diff 812 840      what changed between two resourceVersions
  pilothouse history secret/db -n prod --at 2h      the Secret as it was two hours ago
  pilothouse history cm/conf --at 2026-12-06T06:40:00Z
  pilothouse history pod/web-1 --at 1234            as of resourceVersion 1234 (even deleted)

The server keeps history for --history-retention (default 24h) on its SQLite store.
"""


class UsageError(Exception):
    """Bad input from the command line, with what to do about it."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "history",
        help="every stored revision of an object: who changed what, when",
        description="Show every revision of an object the server still keeps (the time, "
        "resourceVersion, field manager, user and operation of each write), what each "
        "changed, or the whole object as it was at a time or resourceVersion.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("object", metavar="KIND/NAME", help="e.g. deployment/web, secret/db, no/n1")
    p.add_argument(
        "-n", "--namespace", default="", help="namespace of a namespaced object (default: default)"
    )
    p.add_argument(
        "--diff",
        nargs="*",
        metavar="RV",
        default=None,
        help="show unified YAML diffs: between consecutive revisions, or between the two "
        "resourceVersions given",
    )
    p.add_argument(
        "--at",
        metavar="TIME|RV",
        default="",
        help="print the whole object as it was at a resourceVersion, an RFC 3339 time, or "
        "a duration ago (90s, 10m, 2h)",
    )
    p.add_argument(
        "--show-managed-fields",
        action="store_true",
        help="keep metadata.managedFields in diffs and --at output",
    )
    p.add_argument("-o", "--output", choices=["table", "yaml", "json"], default="table")
    p.add_argument(
        "--kubeconfig",
        default="",
        help="kubeconfig file (default: $KUBECONFIG, then the local server's admin kubeconfig)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except errors.StatusError as exc:
        print(f"Error from server ({exc.reason}): {exc.message}", file=sys.stderr)
        return 1
    except client_config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def resolve(kind: str, registry: resources.Registry = resources.DEFAULT) -> resources.Resource:
    """``deploy``, ``deployment``, ``deployments``, ``deployments.apps`` → the resource,
    as kubectl resolves them (core and the newest version first)."""
    name, _, group = kind.lower().partition(".")
    matches = [
        r
        for r in registry.resources
        if r.stored
        and (not group or r.group == group or r.group.startswith(group + "."))
        and name in (r.plural, r.singular_name, r.kind.lower(), *r.short_names)
    ]
    if not matches:
        raise UsageError(
            f'the server doesn\'t have a resource type "{kind}"'
            " (try `kubectl api-resources` for the names)"
        )
    matches.sort(key=lambda r: (r.group != "", r.group == "events.k8s.io"))
    return matches[0]


def kubeconfig_for(given: str) -> client_config.ClusterConfig:
    """The cluster of ``--kubeconfig``, else ``$KUBECONFIG``, else the local server's."""
    path = given or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if not path:
        path = str(kubectl.kubeconfig_path())
        if not Path(path).exists():
            raise UsageError(
                f"no kubeconfig: pass --kubeconfig, set KUBECONFIG, or start the server "
                f"(its admin kubeconfig would be at {path})"
            )
    return client_config.load_kubeconfig(path)


def history_path(resource: resources.Resource, namespace: str, name: str) -> str:
    return "/history" + rest.resource_path(resource, namespace, name)


async def _run(args: argparse.Namespace) -> int:
    kind, sep, name = args.object.partition("/")
    if not sep or not kind or not name:
        raise UsageError(f"{args.object!r}: name the object as KIND/NAME, e.g. deployment/web")
    resource = resolve(kind)
    namespace = (args.namespace or "default") if resource.namespaced else ""
    config = kubeconfig_for(args.kubeconfig).with_user_agent("pilothouse-history")
    async with rest.Client(config) as client:
        doc = await client.request("GET", history_path(resource, namespace, name))
    revisions: list[dict[str, Any]] = doc.get("revisions") or []
    out = sys.stdout
    if args.at:
        out.write(render_at(revisions, args.at, args.output, keep_managed=args.show_managed_fields))
    elif args.diff is not None:
        if len(args.diff) not in (0, 2):
            raise UsageError("--diff takes no resourceVersion or two: --diff FROM TO")
        out.write(render_diffs(revisions, args.diff, keep_managed=args.show_managed_fields))
    elif args.output == "json":
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif args.output == "yaml":
        out.write(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
    else:
        out.write(render_table(revisions))
    return 0


# --- formatting (pure; the tests call these) -----------------------------------------


def change(revisions: list[dict[str, Any]], index: int) -> str:
    rev = revisions[index]
    if rev.get("deleted"):
        return "deleted"
    prev = revisions[index - 1] if index else None
    if prev is None or prev.get("deleted"):
        return "created"
    return "updated"


def render_table(revisions: list[dict[str, Any]]) -> str:
    rows = [("REVISION", "TIME", "CHANGE", "OPERATION", "MANAGER", "USER")]
    for i, rev in enumerate(revisions):
        subresource = rev.get("subresource") or ""
        operation = (rev.get("operation") or "") + (f" ({subresource})" if subresource else "")
        rows.append(
            (
                str(rev.get("resourceVersion") or ""),
                _short_time(rev.get("time")),
                change(revisions, i),
                operation or "<none>",
                rev.get("manager") or "<none>",
                rev.get("user") or "<none>",
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "".join(
        "   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() + "\n"
        for r in rows
    )


def _short_time(value: Any) -> str:
    if not value:
        return "<unknown>"
    text = str(value)
    return text[:19] + "Z" if len(text) > 20 else text


def clean(obj: dict[str, Any], *, keep_managed: bool) -> dict[str, Any]:
    """The object as a diff should show it: without the resourceVersion (every revision
    has its own) and, unless asked, without managedFields (timestamps churn there)."""
    out = dict(obj)
    md = dict(out.get("metadata") or {})
    md.pop("resourceVersion", None)
    if not keep_managed:
        md.pop("managedFields", None)
    out["metadata"] = md
    return out


def to_yaml(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True)


def unified(a: dict[str, Any] | None, b: dict[str, Any] | None, a_name: str, b_name: str) -> str:
    left = to_yaml(a).splitlines(keepends=True) if a is not None else []
    right = to_yaml(b).splitlines(keepends=True) if b is not None else []
    return "".join(difflib.unified_diff(left, right, a_name, b_name))


def _find(revisions: list[dict[str, Any]], rv: str) -> int:
    for i, rev in enumerate(revisions):
        if str(rev.get("resourceVersion")) == rv:
            return i
    kept = ", ".join(str(r.get("resourceVersion")) for r in revisions)
    raise UsageError(f"resourceVersion {rv} is not a revision of this object (kept: {kept})")


def render_diffs(revisions: list[dict[str, Any]], between: list[str], *, keep_managed: bool) -> str:
    def state(i: int) -> dict[str, Any] | None:
        rev = revisions[i]
        return None if rev.get("deleted") else clean(rev["object"], keep_managed=keep_managed)

    def label(i: int) -> str:
        rev = revisions[i]
        who = rev.get("manager") or rev.get("user") or "unknown"
        return f"{rev.get('resourceVersion')} {change(revisions, i)} by {who} at {rev.get('time')}"

    if between:
        a, b = _find(revisions, between[0]), _find(revisions, between[1])
        return unified(state(a), state(b), label(a), label(b))
    parts = []
    for i in range(len(revisions)):
        prev = state(i - 1) if i and not revisions[i - 1].get("deleted") else None
        parts.append(unified(prev, state(i), label(i - 1) if i else "/dev/null", label(i)))
    return "".join(parts)


def pick_at(
    revisions: list[dict[str, Any]], at: str, *, now: float | None = None
) -> dict[str, Any]:
    """The revision in effect at ``at`` (a resourceVersion, an RFC 3339 time, or a
    duration ago)."""
    if not revisions:
        raise UsageError("no revisions")
    if at.isdigit():
        key = int(at)
        chosen = [r for r in revisions if int(r["resourceVersion"]) <= key]
        what = f"resourceVersion {at}"
    else:
        when = _parse_time(at, now=now)
        chosen = [r for r in revisions if r.get("time") and _parse_time(r["time"]) <= when]
        what = datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not chosen:
        first = revisions[0]
        raise UsageError(
            f"the object did not exist yet at {what} (its oldest kept revision is "
            f"{first['resourceVersion']} at {first.get('time')})"
        )
    rev = chosen[-1]
    if rev.get("deleted"):
        raise UsageError(
            f"the object was deleted at {what} (deleted in revision {rev['resourceVersion']}"
            f" at {rev.get('time')}; try an earlier --at)"
        )
    return rev


def render_at(revisions: list[dict[str, Any]], at: str, output: str, *, keep_managed: bool) -> str:
    obj = pick_at(revisions, at)["object"]
    if not keep_managed:
        obj = dict(obj)
        md = dict(obj.get("metadata") or {})
        md.pop("managedFields", None)
        obj["metadata"] = md
    if output == "json":
        return orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n"
    return to_yaml(obj)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_time(text: str, *, now: float | None = None) -> float:
    text = text.strip()
    if text and text[-1] in _UNITS and text[:-1].replace(".", "", 1).isdigit():
        current = now if now is not None else datetime.datetime.now(datetime.UTC).timestamp()
        return current - float(text[:-1]) * _UNITS[text[-1]]
    try:
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--at {text!r}: give a resourceVersion (1234), an RFC 3339 time "
            "(2026-12-06T06:40:00Z) or a duration ago (10m, 2h)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()
