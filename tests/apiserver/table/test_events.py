"""The Event table, with the cases of upstream's TestPrintEvent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pilothouse.apiserver.table import events

NOW = 1_764_088_762.0
DAY = 86400


def ago(seconds: float, *, micro: bool = False) -> str:
    moment = datetime.fromtimestamp(NOW - seconds, tz=UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


DEPLOYMENT = {"kind": "Deployment", "name": "Deployment Name", "fieldPath": "spec.containers{foo}"}


def event(name: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": DEPLOYMENT,
        "reason": "Event Reason",
        "message": "Message Data",
        "type": "Warning",
        "source": {"component": "kubelet", "host": "Node1"},
    }
    base.update(fields)
    return base


WIDE = ["deployment/Deployment Name", "spec.containers{foo}", "kubelet, Node1", "Message Data"]


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        (
            event("event1", source={"component": "kubelet"}, type="Normal",
                  involvedObject={"kind": "Pod", "name": "Pod Name", "fieldPath": "spec.containers{foo}"},
                  firstTimestamp=ago(3 * DAY), lastTimestamp=ago(2 * DAY), count=6),
            ["2d", "Normal", "Event Reason", "pod/Pod Name", "spec.containers{foo}", "kubelet",
             "Message Data", "3d", 6, "event1"],
        ),
        (
            event("event2", firstTimestamp=ago(3 * DAY), lastTimestamp=ago(2 * DAY), count=6),
            ["2d", "Warning", "Event Reason", *WIDE, "3d", 6, "event2"],
        ),
        (
            # no firstTimestamp: eventTime stands in
            event("event3", eventTime=ago(3 * DAY, micro=True), lastTimestamp=ago(3 * DAY), count=1),
            ["3d", "Warning", "Event Reason", *WIDE, "3d", 1, "event3"],
        ),
        (
            # no lastTimestamp: the first seen time stands in
            event("event4", eventTime=ago(3 * DAY, micro=True), firstTimestamp=ago(3 * DAY), count=1),
            ["3d", "Warning", "Event Reason", *WIDE, "3d", 1, "event4"],
        ),
        (
            event("event5", eventTime=ago(3 * DAY, micro=True), count=1, firstTimestamp=None,
                  lastTimestamp=None),
            ["3d", "Warning", "Event Reason", *WIDE, "3d", 1, "event5"],
        ),
        (
            # a series: its last observed time and count
            event("event6", eventTime=ago(3 * DAY, micro=True),
                  series={"count": 2, "lastObservedTime": ago(2 * DAY, micro=True)}),
            ["2d", "Warning", "Event Reason", *WIDE, "3d", 2, "event6"],
        ),
        (
            # a singleton without a count counts once
            event("event7", eventTime=ago(3 * DAY, micro=True)),
            ["3d", "Warning", "Event Reason", *WIDE, "3d", 1, "event7"],
        ),
        (
            # no source: the reporting controller and instance stand in
            event("event2", source={}, reportingComponent="kubelet", reportingInstance="test",
                  firstTimestamp=ago(3 * DAY), lastTimestamp=ago(2 * DAY), count=6),
            ["2d", "Warning", "Event Reason", "deployment/Deployment Name", "spec.containers{foo}",
             "kubelet, test", "Message Data", "3d", 6, "event2"],
        ),
        (
            # nothing known about when: <unknown>; no name: the kind alone
            event("event8", involvedObject={"kind": "Node"}, message="  drained \n", source={}),
            ["<unknown>", "Warning", "Event Reason", "node", "", "", "drained", "<unknown>", 1, "event8"],
        ),
    ],
)  # fmt: skip
def test_print_event(obj: dict[str, Any], want: list[Any]) -> None:
    assert events.event_cells(obj, NOW) == want


def test_events_k8s_io_shape() -> None:
    obj = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "web-1.17f", "namespace": "default"},
        "eventTime": ago(300, micro=True),
        "series": {"count": 4, "lastObservedTime": ago(20, micro=True)},
        "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-node-1",
        "action": "Scheduling",
        "reason": "FailedScheduling",
        "regarding": {"kind": "Pod", "namespace": "default", "name": "web-1"},
        "note": "0/1 nodes are available.",
        "type": "Warning",
    }
    assert events.event_cells(obj, NOW) == [
        "20s", "Warning", "FailedScheduling", "pod/web-1", "",
        "default-scheduler, default-scheduler-node-1", "0/1 nodes are available.", "5m", 4,
        "web-1.17f",
    ]  # fmt: skip
    legacy = dict(obj, deprecatedFirstTimestamp=ago(600), deprecatedLastTimestamp=ago(60),
                  deprecatedCount=7, deprecatedSource={"component": "kubelet", "host": "n1"})  # fmt: skip
    del legacy["series"]
    assert events.event_cells(legacy, NOW)[:9] == [
        "60s", "Warning", "FailedScheduling", "pod/web-1", "", "kubelet, n1",
        "0/1 nodes are available.", "10m", 7,
    ]  # fmt: skip


def test_go_trim_space_keeps_ascii_separators() -> None:
    obj = event("e", message="\x1fmessage\u3000")
    assert events.event_cells(obj, NOW)[6] == "\x1fmessage"
