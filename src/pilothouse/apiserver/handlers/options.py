"""Query parameters of resource requests, parsed and checked as upstream does.

Bad values are the client's fault and get 400 BadRequest, or 422 Invalid on
the options kind (``CreateOptions.meta.k8s.io "" is invalid: …``) where
upstream validates them that way. Unknown parameters are ignored, as upstream
ignores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pilothouse.api import errors
from pilothouse.apiserver.registry import deletion

FIELD_VALIDATION = ("Ignore", "Strict", "Warn")
FIELD_MANAGER_MAX = 128


def _int(query: Mapping[str, str], name: str, *, minimum: int = 0) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise errors.bad_request(f'invalid value for {name}: "{raw}": must be an integer') from None
    if value < minimum:
        raise errors.bad_request(f'invalid value for {name}: "{raw}": must be >= {minimum}')
    return value


def _bool(query: Mapping[str, str], name: str) -> bool:
    raw = query.get(name)
    if raw is None:
        return False
    if raw.lower() in ("", "true", "1"):
        return bool(raw)
    if raw.lower() in ("false", "0"):
        return False
    raise errors.bad_request(f'invalid value for {name}: "{raw}": must be a boolean')


@dataclass(frozen=True, slots=True)
class ListParams:
    label_selector: str
    field_selector: str
    limit: int
    continue_token: str
    resource_version: str
    resource_version_match: str
    watch: bool
    allow_bookmarks: bool
    timeout_seconds: int | None
    send_initial_events: bool | None
    include_object: str

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> ListParams:
        include = query.get("includeObject", "Metadata") or "Metadata"
        if include not in ("None", "Metadata", "Object"):
            raise errors.bad_request(f'unrecognized includeObject value: "{include}"')
        sie = query.get("sendInitialEvents")
        send_initial = None if sie is None else _bool(query, "sendInitialEvents")
        params = cls(
            label_selector=query.get("labelSelector", ""),
            field_selector=query.get("fieldSelector", ""),
            limit=_int(query, "limit") or 0,
            continue_token=query.get("continue", ""),
            resource_version=query.get("resourceVersion", ""),
            resource_version_match=query.get("resourceVersionMatch", ""),
            watch=_bool(query, "watch"),
            allow_bookmarks=_bool(query, "allowWatchBookmarks"),
            timeout_seconds=_int(query, "timeoutSeconds"),
            send_initial_events=send_initial,
            include_object=include,
        )
        if params.continue_token and params.resource_version not in ("", "0"):
            raise errors.bad_request(
                "specifying resource version is not allowed when using continue"
            )
        if params.resource_version_match and not params.watch and params.resource_version == "":
            raise errors.bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided"
            )
        return params


@dataclass(frozen=True, slots=True)
class WriteParams:
    dry_run: bool
    field_manager: str
    field_validation: str
    force: bool

    @classmethod
    def parse(cls, query: Mapping[str, str], *, options_kind: str) -> WriteParams:
        problems: list[errors.FieldError] = []
        getall = getattr(query, "getall", None)
        if getall is not None:
            dry_run_values = list(getall("dryRun", []))
        else:
            dry_run_values = [query["dryRun"]] if "dryRun" in query else []
        if any(v != "All" for v in dry_run_values):
            problems.append(errors.not_supported("dryRun", list(dry_run_values), ["All"]))
        manager = query.get("fieldManager", "")
        if len(manager) > FIELD_MANAGER_MAX:
            problems.append(errors.too_long("fieldManager", FIELD_MANAGER_MAX))
        for i, ch in enumerate(manager):
            if not ch.isprintable():
                problems.append(
                    errors.invalid_value(
                        "fieldManager", manager, f"invalid character {ch!r} (at position {i})"
                    )
                )
                break
        validation = query.get("fieldValidation", "")
        if validation not in ("", *FIELD_VALIDATION):
            problems.append(
                errors.not_supported("fieldValidation", validation, ["", *FIELD_VALIDATION])
            )
        if problems:
            raise errors.invalid(options_kind, "meta.k8s.io", "", problems)
        force = _bool(query, "force")
        return cls(
            dry_run=bool(dry_run_values),
            field_manager=manager,
            # Upstream's default when the client says nothing is Warn.
            field_validation=validation or "Warn",
            force=force,
        )


@dataclass(frozen=True, slots=True)
class DeleteParams:
    dry_run: bool
    grace_period_seconds: int | None
    propagation_policy: str
    orphan_dependents: bool | None
    precondition_uid: str
    precondition_rv: str

    def to_options(self) -> deletion.Options:
        return deletion.Options(
            dry_run=self.dry_run,
            grace_period_seconds=self.grace_period_seconds,
            propagation_policy=self.propagation_policy,
            orphan_dependents=self.orphan_dependents,
            precondition_uid=self.precondition_uid,
            precondition_rv=self.precondition_rv,
        )

    @classmethod
    def parse(cls, query: Mapping[str, str], body: dict[str, object] | None) -> DeleteParams:
        body = body or {}
        write = WriteParams.parse(query, options_kind="DeleteOptions")
        dry_run = write.dry_run or bool(body.get("dryRun"))
        grace = _int(query, "gracePeriodSeconds", minimum=-1 << 62)
        if grace is None and body.get("gracePeriodSeconds") is not None:
            try:
                grace = int(body["gracePeriodSeconds"])  # type: ignore[call-overload]
            except (TypeError, ValueError):
                raise errors.bad_request("gracePeriodSeconds must be an integer") from None
        policy = str(query.get("propagationPolicy") or body.get("propagationPolicy") or "")
        if policy not in ("", "Orphan", "Background", "Foreground"):
            raise errors.invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                [
                    errors.not_supported(
                        "propagationPolicy", policy, ["Foreground", "Background", "Orphan", "nil"]
                    )
                ],
            )
        orphan_raw = query.get("orphanDependents")
        orphan: bool | None = None
        if orphan_raw is not None:
            orphan = _bool(query, "orphanDependents")
        elif isinstance(body.get("orphanDependents"), bool):
            orphan = bool(body["orphanDependents"])
        if orphan is not None and policy:
            raise errors.invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                [
                    errors.invalid_value(
                        "propagationPolicy",
                        policy,
                        "orphanDependents and deletionPropagation cannot be both set",
                    )
                ],
            )
        pre = body.get("preconditions") or {}
        if not isinstance(pre, dict):
            raise errors.bad_request("preconditions must be an object")
        return cls(
            dry_run=dry_run,
            grace_period_seconds=grace,
            propagation_policy=policy,
            orphan_dependents=orphan,
            precondition_uid=str(pre.get("uid") or ""),
            precondition_rv=str(pre.get("resourceVersion") or ""),
        )
