"""The cluster DNS flags of ``pilothouse server`` and ``pilothouse agent``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pilothouse.cli import dnsflags
from pilothouse.dns import resolvconf


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    dnsflags.add_arguments(p)
    return p.parse_args(list(argv))


def test_defaults_are_upstreams() -> None:
    s = dnsflags.settings(parse())
    assert (s.cluster_dns, s.cluster_domain, s.serve) == (("10.43.0.10",), "cluster.local", True)
    assert s.upstreams == resolvconf.HOST_RESOLV_CONF


def test_values(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.1\n")
    s = dnsflags.settings(
        parse(
            "--cluster-dns",
            "10.43.0.53,fd00::a",
            "--cluster-domain",
            "Corp.Example.",
            "--resolv-conf",
            str(conf),
            "--disable-dns",
        )
    )
    assert s.cluster_dns == ("10.43.0.53", "fd00::a")
    assert s.cluster_domain == "corp.example"
    assert s.resolv_conf == s.upstreams == conf
    assert not s.serve
    assert dnsflags.settings(parse("--resolv-conf", "")).resolv_conf is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cluster-dns", "ten.dot"], "--cluster-dns: 'ten.dot' is not an IP address"),
        (["--cluster-domain", "a..b"], "--cluster-domain: 'a..b' is not a DNS domain"),
        (["--cluster-domain", "under_score.local"], "is not a DNS domain"),
        (["--resolv-conf", "/nonexistent/resolv.conf"], "is not a file"),
    ],
)
def test_mistakes_say_what_to_do(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dnsflags.settings(parse(*argv))
