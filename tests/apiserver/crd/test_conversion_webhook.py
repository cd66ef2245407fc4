"""Webhook conversion: a ConversionReview v1 webhook served here over HTTPS with its own CA."""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pilothouse.apiserver.auth import certs

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _schema(field: str) -> dict[str, Any]:
    return {
        "openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {field: {"type": "string"}}}},
        }
    }


class Webhook:
    """Converts ``spec.colour`` (v1beta1) and ``spec.color`` (v1) both ways."""

    def __init__(self, pki: certs.PKI) -> None:
        self.reviews: list[dict[str, Any]] = []
        self.fail: str = ""
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.reviews.append(review)
                request = review["request"]
                desired = request["desiredAPIVersion"]
                out = []
                for obj in request["objects"]:
                    spec = dict(obj.get("spec") or {})
                    if desired.endswith("/v1") and "colour" in spec:
                        spec["color"] = spec.pop("colour")
                    if desired.endswith("/v1beta1") and "color" in spec:
                        spec["colour"] = spec.pop("color")
                    out.append({**obj, "apiVersion": desired, "spec": spec})
                result = (
                    {"status": "Failure", "message": hook.fail}
                    if hook.fail
                    else {"status": "Success"}
                )
                body = json.dumps(
                    {
                        "apiVersion": "apiextensions.k8s.io/v1",
                        "kind": "ConversionReview",
                        "response": {
                            "uid": request["uid"],
                            "result": result,
                            "convertedObjects": out,
                        },
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[tuple[Webhook, str]]:
    pki = certs.ensure_pki(tmp_path / "webhook", hostnames=["localhost"], ips=["127.0.0.1"])
    hook = Webhook(pki)
    yield hook, base64.b64encode(pki.ca_cert.read_bytes()).decode()
    hook.stop()


def test_objects_convert_through_the_webhook(
    api: Any, namespace: str, webhook: tuple[Webhook, str]
) -> None:
    hook, ca_bundle = webhook
    group = f"c{uuid.uuid4().hex[:8]}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": {
                        "url": f"https://127.0.0.1:{hook.port}/convert",
                        "caBundle": ca_bundle,
                    },
                },
            },
            "versions": [
                {"name": "v1beta1", "served": True, "storage": False, "schema": _schema("colour")},
                {"name": "v1", "served": True, "storage": True, "schema": _schema("color")},
            ],
        },
    }
    status, body = api.json("POST", CRDS, crd)
    assert status == 201, body
    old = f"/apis/{group}/v1beta1/namespaces/{namespace}/widgets"
    new = f"/apis/{group}/v1/namespaces/{namespace}/widgets"
    obj = {
        "apiVersion": f"{group}/v1beta1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": {"colour": "red"},
    }
    status, created = api.json("POST", old, obj)
    assert status == 201, created
    assert created["apiVersion"] == f"{group}/v1beta1"
    assert created["spec"] == {"colour": "red"}
    # Stored in the storage version, converted by the webhook.
    status, stored = api.json("GET", f"{new}/w")
    assert stored["apiVersion"] == f"{group}/v1"
    assert stored["spec"] == {"color": "red"}
    review = hook.reviews[0]
    assert (
        review["apiVersion"] == "apiextensions.k8s.io/v1" and review["kind"] == "ConversionReview"
    )
    assert review["request"]["desiredAPIVersion"] == f"{group}/v1"
    # Lists convert every object in one review.
    api.json(
        "POST",
        new,
        {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "x"},
            "spec": {"color": "blue"},
        },
    )
    before = len(hook.reviews)
    status, listed = api.json("GET", old)
    assert [o["spec"] for o in listed["items"]] == [{"colour": "red"}, {"colour": "blue"}]
    assert len(hook.reviews) == before + 1
    assert len(hook.reviews[-1]["request"]["objects"]) == 2
    # A failing webhook is a 500 with upstream's words.
    hook.fail = "no can do"
    status, err = api.json("GET", f"{old}/w")
    assert status == 500
    assert err["message"] == (
        f"Internal error occurred: conversion webhook for {group}/v1, Kind=Widget failed: no can do"
    )
    hook.fail = ""
    hook.stop()
    status, err = api.json("GET", f"{old}/w")
    assert status == 500
    assert err["message"].startswith(
        f'Internal error occurred: conversion webhook for {group}/v1, Kind=Widget failed: Post "https://127.0.0.1:{hook.port}/convert"'
    )
    # The storage version needs no webhook.
    assert api.json("GET", f"{new}/w")[0] == 200
    api.request("DELETE", f"{CRDS}/widgets.{group}")
