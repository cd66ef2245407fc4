"""The error predicates answer by reason first and by code only for reasons they do not
know, as client-go's apierrors does."""

from __future__ import annotations

from pilothouse.api import errors


def test_reason_decides() -> None:
    exists = errors.already_exists("pods", "", "a")
    assert errors.is_already_exists(exists)
    assert not errors.is_conflict(exists)  # both are 409; the reason tells them apart
    stale = errors.stale_update("pods", "", "a")
    assert errors.is_conflict(stale) and not errors.is_already_exists(stale)
    assert errors.is_not_found(errors.not_found("pods", "", "a"))
    assert errors.is_gone(errors.too_old_resource_version(3, 9))
    assert errors.is_too_many_requests(errors.too_many_requests("slow down", retry_after=2))
    assert errors.retry_after(errors.too_many_requests("slow down", retry_after=2)) == 2


def test_unknown_reason_falls_back_to_code() -> None:
    assert errors.is_not_found(errors.StatusError(404, "", "gone missing"))
    assert errors.is_conflict(errors.StatusError(409, "SomethingNew", "x"))
    assert errors.is_server_unavailable(errors.StatusError(503, "", "x"))
    assert not errors.is_not_found(errors.StatusError(500, "", "x"))


def test_non_status_errors_are_nothing() -> None:
    assert not errors.is_not_found(KeyError("x"))
    assert errors.reason_of(OSError()) == ""
    assert errors.retry_after(ValueError()) is None


def test_has_cause() -> None:
    err = errors.invalid(
        "Pod",
        "",
        "p",
        [errors.required("spec.containers", ""), errors.too_long("metadata.name", 5)],
    )
    assert errors.has_cause(err, errors.REQUIRED)
    assert errors.has_cause(err, errors.TOO_LONG, field="metadata.name")
    assert not errors.has_cause(err, errors.TOO_LONG, field="spec")
    assert not errors.has_cause(errors.not_found("pods", "", "p"), errors.REQUIRED)
