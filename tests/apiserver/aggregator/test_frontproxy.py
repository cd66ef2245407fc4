"""The front proxy's certificates start as far back as every other certificate of the
server (keypairs.BACKDATE), so a peer whose clock runs a little behind accepts them."""

from __future__ import annotations

import datetime

from pilothouse.apiserver.aggregator import frontproxy
from pilothouse.apiserver.auth import keypairs


def test_ca_and_leaves_are_backdated_like_the_servers_own() -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    ca = frontproxy.new_ca("front-proxy-ca")
    client = frontproxy.issue(ca, frontproxy.CLIENT_NAME, server=False)
    serving = frontproxy.issue(ca, "api.example", server=True, hostnames=["api.example"])
    after = datetime.datetime.now(datetime.UTC)
    for pair in (ca, client, serving):
        start = pair.cert.not_valid_before_utc
        assert before - keypairs.BACKDATE <= start <= after - keypairs.BACKDATE
    assert client.cert.issuer == ca.cert.subject
