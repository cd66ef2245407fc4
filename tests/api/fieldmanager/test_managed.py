"""The managedFields list: decoding, identifiers, order, capping."""

from __future__ import annotations

from typing import Any

import pytest

from pilothouse.api.fieldmanager import managed
from pilothouse.api.fieldmanager.fieldpath import Set
from pilothouse.api.fieldmanager.managed import ManagerKey


def _entry(
    manager: str,
    operation: str = "Update",
    *,
    api_version: str = "v1",
    time: str | None = None,
    fields: dict[str, Any] | None = None,
    subresource: str = "",
) -> dict[str, Any]:
    out: dict[str, Any] = {"manager": manager, "operation": operation, "apiVersion": api_version}
    if time:
        out["time"] = time
    out["fieldsType"] = "FieldsV1"
    out["fieldsV1"] = fields if fields is not None else {"f:data": {"f:" + manager: {}}}
    if subresource:
        out["subresource"] = subresource
    return out


# k8s.io/apimachinery managedfields/internal/managedfields_test.go, TestBuildManagerIdentifier.
@pytest.mark.parametrize(
    ("key", "identifier"),
    [
        (
            ManagerKey.of("foo", "Update", "v1", ""),
            '{"manager":"foo","operation":"Update","apiVersion":"v1"}',
        ),
        (ManagerKey.of("foo", "Apply", "v1", ""), '{"manager":"foo","operation":"Apply"}'),
        (
            ManagerKey.of("foo", "Apply", "v1", "scale"),
            '{"manager":"foo","operation":"Apply","subresource":"scale"}',
        ),
        (ManagerKey.of("a<b", "Apply", "v1", ""), '{"manager":"a\\u003cb","operation":"Apply"}'),
    ],
)
def test_identifier(key: ManagerKey, identifier: str) -> None:
    assert key.identifier() == identifier


def test_describe() -> None:
    assert ManagerKey.of("kubectl", "Apply", "apps/v1", "").describe("apps/v1") == '"kubectl"'
    assert (
        ManagerKey.of("kube-controller-manager", "Update", "apps/v1", "status").describe("apps/v1")
        == '"kube-controller-manager" with subresource "status" using apps/v1'
    )


def test_round_trip_keeps_entries_and_order() -> None:
    entries = [
        _entry("apply", "Apply", time="2024-01-01T00:00:00Z"),
        _entry("b", time="2024-01-01T00:00:01Z"),
        _entry("a", time="2024-01-01T00:00:02Z", subresource="status"),
    ]
    assert managed.encode(managed.decode(entries)) == entries


# managedfields_test.go, TestSortEncodedManagedFields ("manager sorted").
def test_sort_order() -> None:
    spec = [
        ("c", "Update", "2001-01-01T01:00:00Z"),
        ("a", "Apply", None),
        ("g", "Apply", None),
        ("f", "Update", "2002-01-01T01:00:00Z"),
        ("i", "Apply", None),
        ("d", "Update", "2002-01-01T01:00:00Z"),
        ("h", "Apply", None),
        ("e", "Update", "2003-01-01T01:00:00Z"),
        ("b", "Apply", None),
    ]
    entries = [_entry(m, op, time=t) for m, op, t in spec]
    order = [e["manager"] for e in managed.encode(managed.decode(entries))]
    assert order == ["a", "b", "g", "h", "i", "c", "d", "f", "e"]


def test_sort_by_subresource_last() -> None:
    entries = [
        _entry("a", "Apply", subresource="status"),
        _entry("a", "Apply", subresource="scale"),
        _entry("a", "Apply"),
    ]
    encoded = managed.encode(managed.decode(entries))
    assert [e.get("subresource", "") for e in encoded] == ["", "scale", "status"]


def test_the_later_of_two_entries_for_one_manager_wins() -> None:
    entries = [
        _entry("m", "Apply", fields={"f:data": {"f:a": {}}}),
        _entry("m", "Apply", fields={"f:data": {"f:b": {}}}),
    ]
    decoded = managed.decode(entries)
    assert next(iter(decoded.values())).fields == Set.of(("f:data", "f:b"))
    assert len(decoded) == 1


def test_appliers_keep_identity_across_versions_updaters_do_not() -> None:
    entries = [
        _entry("m", "Apply", api_version="apps/v1beta1"),
        _entry("m", "Apply", api_version="apps/v1"),
        _entry("u", api_version="apps/v1beta1"),
        _entry("u", api_version="apps/v1"),
    ]
    assert len(managed.decode(entries)) == 3


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{**_entry("m"), "operation": "Patch"}], "operation must be `Apply` or `Update`"),
        ([{**_entry("m"), "apiVersion": ""}], "apiVersion must not be empty"),
        ([{**_entry("m"), "fieldsType": ""}], "missing fieldsType in managed fields entry 0"),
        ([{**_entry("m"), "fieldsType": "FieldsV2"}], "invalid fieldsType 'FieldsV2'"),
        ([{**_entry("m"), "fieldsV1": {"f:a": 1}}], "error decoding set"),
    ],
)
def test_decode_errors(entries: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(managed.DecodeError, match=message):
        managed.decode(entries)


@pytest.mark.parametrize(
    ("entries", "reset"),
    [([], True), ([{}], True), (None, False), ([{}, {}], False), ([_entry("m")], False)],
)
def test_is_reset(entries: Any, reset: bool) -> None:
    assert managed.is_reset(entries) is reset


def _timed(name: str, version: str, hour: int, *fields: str) -> dict[str, Any]:
    return _entry(
        name,
        api_version=version,
        time=f"2001-01-01T{hour:02d}:00:00Z",
        fields={"f:" + f: {} for f in sorted(fields)},
    )


# k8s.io/apimachinery managedfields/internal/capmanagers_test.go, TestCapUpdateManagers.
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            [
                _timed("update-manager1", "v1", 1, "a"),
                _timed("update-manager2", "v1", 2, "b"),
                _timed("update-manager3", "v1", 3, "c"),
                _timed("update-manager4", "v1", 4, "d"),
            ],
            [
                _timed("ancient-changes", "v1", 2, "a", "b"),
                _timed("update-manager3", "v1", 3, "c"),
                _timed("update-manager4", "v1", 4, "d"),
            ],
        ),
        (
            [
                _timed("ancient-changes", "v1", 2, "a", "b"),
                _timed("update-manager3", "v1", 3, "c"),
                _timed("update-manager4", "v1", 4, "d"),
                _timed("update-manager5", "v1", 5, "e"),
            ],
            [
                _timed("ancient-changes", "v1", 3, "a", "b", "c"),
                _timed("update-manager4", "v1", 4, "d"),
                _timed("update-manager5", "v1", 5, "e"),
            ],
        ),
        (
            [
                _timed("update-manager1", "v1", 1, "a"),
                _timed("update-manager2", "v2", 2, "b"),
                _timed("update-manager3", "v1", 3, "c"),
                _timed("update-manager4", "v1", 4, "d"),
                _timed("update-manager5", "v1", 5, "e"),
            ],
            [
                _timed("update-manager2", "v2", 2, "b"),
                _timed("ancient-changes", "v1", 4, "a", "c", "d"),
                _timed("update-manager5", "v1", 5, "e"),
            ],
        ),
        (
            [
                _timed("update-manager2", "v2", 2, "b"),
                _timed("ancient-changes", "v1", 4, "a", "c", "d"),
                _timed("update-manager5", "v1", 5, "e"),
                _timed("update-manager6", "v3", 6, "f"),
                _timed("update-manager7", "v2", 7, "g"),
            ],
            [
                _timed("ancient-changes", "v1", 5, "a", "c", "d", "e"),
                _timed("update-manager6", "v3", 6, "f"),
                _timed("ancient-changes", "v2", 7, "b", "g"),
            ],
        ),
        (
            [
                _timed("ancient-changes", "v1", 5, "a", "c", "d", "e"),
                _timed("update-manager6", "v3", 6, "f"),
                _timed("ancient-changes", "v2", 7, "b", "g"),
                _timed("update-manager8", "v4", 8, "h"),
            ],
            [
                _timed("ancient-changes", "v1", 5, "a", "c", "d", "e"),
                _timed("update-manager6", "v3", 6, "f"),
                _timed("ancient-changes", "v2", 7, "b", "g"),
                _timed("update-manager8", "v4", 8, "h"),
            ],
        ),
    ],
)
def test_cap_update_managers(given: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    capped = managed.cap_update_managers(managed.decode(given), limit=3)
    assert managed.encode(capped) == expected


def test_appliers_are_never_capped() -> None:
    entries = [_entry(f"a{i}", "Apply") for i in range(15)]
    assert len(managed.cap_update_managers(managed.decode(entries))) == 15
