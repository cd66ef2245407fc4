"""The admission and audit flags of ``pilothouse server``, and what a server says about bad
ones before it touches its data."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pilothouse import testing
from pilothouse.apiserver import server as apiserver
from pilothouse.apiserver import serverconfig
from pilothouse.cli import admissionflags


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    admissionflags.add_arguments(p)
    return p.parse_args(list(argv))


def test_defaults_are_kube_apiservers() -> None:
    cfg = admissionflags.server_config(parse())
    assert cfg["enable_admission_plugins"] == [] and cfg["disable_admission_plugins"] == []
    assert cfg["audit_policy_file"] is None
    log = cfg["audit_log"]
    assert (log.path, log.format, log.mode, log.max_size_mb) == ("", "json", "blocking", 0)


def test_values() -> None:
    cfg = admissionflags.server_config(
        parse(
            "--enable-admission-plugins", "AlwaysPullImages, DenyServiceExternalIPs",
            "--disable-admission-plugins", "PodSecurity",
            "--audit-policy-file", "/etc/p.yaml",
            "--audit-log-path", "-",
            "--audit-log-maxsize", "10", "--audit-log-maxbackup", "3", "--audit-log-maxage", "7",
            "--audit-log-compress", "--audit-log-format", "legacy", "--audit-log-mode", "batch",
            "--audit-log-batch-max-wait", "250ms", "--audit-log-batch-max-size", "50",
        )
    )  # fmt: skip
    assert cfg["enable_admission_plugins"] == ["AlwaysPullImages", "DenyServiceExternalIPs"]
    assert cfg["disable_admission_plugins"] == ["PodSecurity"]
    assert cfg["audit_policy_file"] == Path("/etc/p.yaml")
    log = cfg["audit_log"]
    assert (log.path, log.max_size_mb, log.max_backups, log.max_age_days) == ("-", 10, 3, 7)
    assert (log.compress, log.format, log.mode) == (True, "legacy", "batch")
    assert (log.batch_max_wait, log.batch_max_size) == (0.25, 50)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--audit-log-maxsize", "-1"], "must be 0 or more"),
        (["--audit-log-batch-max-wait", "soon"], "invalid duration 'soon' (try 30ms or 1s)"),
        (["--audit-log-mode", "async"], "invalid choice: 'async'"),
    ],
)
def test_bad_values(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)
    assert message in capsys.readouterr().err


def test_the_server_refuses_bad_admission_settings_first(tmp_path: Path) -> None:
    with pytest.raises(serverconfig.StartupError) as exc:
        testing.ServerThread(tmp_path / "a", enable_admission_plugins=["Nope"]).start()
    assert str(exc.value) == 'admission: enable-admission-plugins plugin "Nope" is unknown'
    assert not (tmp_path / "a" / "pki").exists()  # nothing made before the check
    config = tmp_path / "admission.yaml"
    config.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n"
        "- name: PodSecurity\n  configuration:\n"
        "    apiVersion: pod-security.admission.config.k8s.io/v1\n"
        "    kind: PodSecurityConfiguration\n"
        "    defaults: {enforce: strict, warn-version: '1.30'}\n"
        "    exemptions: {usernames: ['']}\n"
    )
    with pytest.raises(serverconfig.StartupError) as exc:
        testing.ServerThread(tmp_path / "b", admission_control_config_file=config).start()
    assert str(exc.value) == (
        'admission: PodSecurity invalid: defaults.enforce: Invalid value: "strict": must be one '
        'of privileged, baseline, restricted, defaults.warn-version: Invalid value: "1.30": '
        'must be "latest" or "v1.x", exemptions.usernames[0]: Invalid value: "": username '
        "must not be empty"
    )


def test_the_server_refuses_a_bad_audit_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n")
    with pytest.raises(serverconfig.StartupError) as exc:
        testing.ServerThread(
            tmp_path / "c",
            audit_policy_file=policy,
            audit_log=apiserver.audit_backend.Options(path="-"),
        ).start()
    assert str(exc.value) == (
        'loading audit policy file: rules[0].level: Unsupported value: "Loud": supported values: '
        f'"None", "Metadata", "Request", "RequestResponse": from file {policy}'
    )


def test_exempt_namespaces_and_defaults_from_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "admission.yaml"
    config.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n"
        "- name: PodSecurity\n  configuration:\n"
        "    apiVersion: pod-security.admission.config.k8s.io/v1\n"
        "    kind: PodSecurityConfiguration\n"
        "    defaults: {enforce: baseline}\n"
        "    exemptions: {namespaces: [kube-system]}\n"
    )
    privileged = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    with testing.server_thread(tmp_path / "d", admission_control_config_file=config) as srv:
        from ..conftest import API

        api = API(srv)
        assert api.json("POST", "/api/v1/namespaces/kube-system/pods", privileged)[0] == 201
        status, body = api.json("POST", "/api/v1/namespaces/default/pods", privileged)
        assert status == 403
        assert body["message"].startswith(
            'pods "p" is forbidden: violates PodSecurity "baseline:latest"'
        )


def test_limited_resources_need_a_covering_quota(tmp_path: Path) -> None:
    config = tmp_path / "admission.yaml"
    config.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n"
        "- name: ResourceQuota\n  configuration:\n"
        "    apiVersion: apiserver.config.k8s.io/v1\n    kind: ResourceQuotaConfiguration\n"
        "    limitedResources:\n"
        "    - resource: pods\n      matchContains: [requests.memory]\n"
        "    - resource: pods\n      matchScopes:\n"
        "      - {scopeName: PriorityClass, operator: In, values: [system-node-critical]}\n"
    )

    def pod(name: str, **spec: object) -> dict[str, object]:
        return {
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
        }

    with testing.server_thread(tmp_path / "d", admission_control_config_file=config) as srv:
        from ..conftest import API

        api = API(srv)
        base = "/api/v1/namespaces/default"
        assert api.json("POST", f"{base}/pods", pod("plain"))[0] == 201
        hungry = pod("hungry")
        hungry["spec"]["containers"][0]["resources"] = {"requests": {"memory": "10Mi"}}  # type: ignore[index]
        status, body = api.json("POST", f"{base}/pods", hungry)
        assert (status, body["message"]) == (
            403,
            'pods "hungry" is forbidden: insufficient quota to consume: requests.memory',
        )
        critical = pod("critical", priorityClassName="system-node-critical")
        status, body = api.json("POST", f"{base}/pods", critical)
        # Upstream answers this one with a plain error (a 500 with the message).
        assert (status, body["message"]) == (
            500,
            "insufficient quota to match these scopes: [{PriorityClass In [system-node-critical]}]",
        )
        quota = {
            "metadata": {"name": "critical"},
            "spec": {
                "hard": {"pods": "10"},
                "scopeSelector": {
                    "matchExpressions": [
                        {
                            "scopeName": "PriorityClass",
                            "operator": "In",
                            "values": ["system-node-critical"],
                        }
                    ]
                },
            },
        }
        status, created = api.json("POST", f"{base}/resourcequotas", quota)
        assert status == 201
        created["status"] = {
            "hard": quota["spec"]["hard"],
            "used": {"pods": "0"},
        }  # type: ignore[index]
        assert api.json("PUT", f"{base}/resourcequotas/critical/status", created)[0] == 200
        assert api.json("POST", f"{base}/pods", critical)[0] == 201
