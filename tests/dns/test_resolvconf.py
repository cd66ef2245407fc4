"""Reading resolv.conf as the kubelet does, and picking the one pods can use."""

from __future__ import annotations

from pathlib import Path

from pilothouse.dns import resolvconf


def test_parse_like_the_kubelet() -> None:
    conf = resolvconf.parse(
        "# generated\n"
        "; also a comment\n"
        "nameserver 192.0.2.1\n"
        "nameserver\n"
        "search old.example\n"
        "search corp.example. . lab.example\n"
        "nameserver 192.0.2.2 ignored\n"
        "options ndots:2 timeout:1\n"
        "options ndots:3 edns0\n"
        "domain whatever.example\n"
    )
    assert conf.nameservers == ("192.0.2.1", "192.0.2.2")
    assert conf.searches == ("corp.example", "lab.example")  # last line wins, dots dropped
    assert conf.options == ("ndots:3", "timeout:1", "edns0")  # merged, later values win
    assert conf.errors == ("nameserver list is empty",)


def test_merge_options() -> None:
    assert resolvconf.merge_options(["ndots:5"], ["ndots:2", "edns0"]) == ["ndots:2", "edns0"]
    assert resolvconf.merge_options(["rotate"], ["rotate"]) == ["rotate"]


def test_loopback_only_hosts_hand_pods_the_real_upstreams(tmp_path: Path) -> None:
    etc = tmp_path / "resolv.conf"
    resolved = tmp_path / "resolved.conf"
    etc.write_text("nameserver 127.0.0.53\noptions edns0\nsearch lan\n")
    assert resolvconf.host_resolv_conf(etc, resolved) == etc  # nothing better exists
    resolved.write_text("nameserver 192.0.2.53\nsearch lan\n")
    assert resolvconf.host_resolv_conf(etc, resolved) == resolved
    etc.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.1\n")
    assert resolvconf.host_resolv_conf(etc, resolved) == etc  # one reachable is enough
    etc.write_text("nameserver ::1\n")
    resolved.write_text("nameserver 127.0.0.1\n")
    assert resolvconf.host_resolv_conf(etc, resolved) == etc
    assert resolvconf.host_resolv_conf(tmp_path / "missing", resolved) == tmp_path / "missing"
