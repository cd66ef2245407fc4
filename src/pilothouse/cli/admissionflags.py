"""The admission and audit flags of ``pilothouse server`` (kube-apiserver's own names)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

PLUGIN_NAME = re.compile(r"^[A-Za-z]+$")


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _duration(text: str) -> float:
    """A Go duration (``30ms``, ``1s``, ``1m``) or plain seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (try 30ms or 1s)")
    value = float(match.group(1))
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2) or "s"]


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    from pilothouse.apiserver.admission import chain, plugins

    available = plugins.factories()

    g = p.add_argument_group(
        "admission",
        "Writes pass an ordered chain of admission plugins after they are decoded and before "
        "they are stored, as in kube-apiserver. Enabled by default: "
        + ", ".join(n for n in chain.ORDER if n in chain.PILOTHOUSE_DEFAULT_ON and n in available)
        + " (the order is always upstream's, whatever order you name them in).",
    )
    g.add_argument(
        "--enable-admission-plugins",
        type=_names,
        default=[],
        metavar="NAME,...",
        help="plugins to run besides the default ones, e.g. AlwaysPullImages,"
        "DenyServiceExternalIPs",
    )
    g.add_argument(
        "--disable-admission-plugins",
        type=_names,
        default=[],
        metavar="NAME,...",
        help="default plugins not to run, e.g. PodSecurity",
    )
    g.add_argument(
        "--admission-control-config-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="an AdmissionConfiguration (apiserver.config.k8s.io/v1) with plugin settings: "
        "PodSecurity defaults and exemptions, ResourceQuota limitedResources",
    )
    a = p.add_argument_group(
        "audit log",
        "With a policy and a log path, every request the policy selects is written as an "
        "audit.k8s.io/v1 Event, one JSON object per line.",
    )
    a.add_argument(
        "--audit-policy-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="the audit Policy (audit.k8s.io/v1): which requests to record at which level "
        "(None, Metadata, Request, RequestResponse)",
    )
    a.add_argument(
        "--audit-log-path",
        default="",
        metavar="FILE",
        help='where to write audit events ("-" for standard output); no path, no audit log',
    )
    a.add_argument(
        "--audit-log-maxsize",
        type=_non_negative,
        default=0,
        metavar="MB",
        help="rotate the log when it would grow past this many megabytes (0: 100)",
    )
    a.add_argument(
        "--audit-log-maxbackup",
        type=_non_negative,
        default=0,
        metavar="N",
        help="keep at most N rotated files (0: keep all)",
    )
    a.add_argument(
        "--audit-log-maxage",
        type=_non_negative,
        default=0,
        metavar="DAYS",
        help="remove rotated files older than this many days (0: keep all)",
    )
    a.add_argument(
        "--audit-log-compress",
        action="store_true",
        help="gzip rotated files",
    )
    a.add_argument(
        "--audit-log-format",
        choices=["json", "legacy"],
        default="json",
        help="json: one Event object per line; legacy: upstream's one-line text (default: "
        "%(default)s)",
    )
    a.add_argument(
        "--audit-log-mode",
        choices=["blocking", "blocking-strict", "batch"],
        default="blocking",
        help="blocking: write each event before the request goes on; blocking-strict: and "
        "refuse requests whose first event cannot be written; batch: write in groups in the "
        "background (default: %(default)s)",
    )
    a.add_argument(
        "--audit-log-batch-buffer-size",
        type=_non_negative,
        default=10000,
        metavar="N",
        help="batch mode: events held before new ones are dropped (default: %(default)s)",
    )
    a.add_argument(
        "--audit-log-batch-max-size",
        type=_non_negative,
        default=400,
        metavar="N",
        help="batch mode: events written at once at most (default: %(default)s)",
    )
    a.add_argument(
        "--audit-log-batch-max-wait",
        type=_duration,
        default=0.03,
        metavar="DURATION",
        help="batch mode: how long an event may wait to be written (default: 30ms)",
    )


def server_config(args: argparse.Namespace) -> dict[str, Any]:
    """The ServerConfig fields these flags set."""
    from pilothouse.apiserver.audit import backend

    return {
        "enable_admission_plugins": args.enable_admission_plugins,
        "disable_admission_plugins": args.disable_admission_plugins,
        "admission_control_config_file": args.admission_control_config_file,
        "audit_policy_file": args.audit_policy_file,
        "audit_log": backend.Options(
            path=args.audit_log_path,
            max_age_days=args.audit_log_maxage,
            max_backups=args.audit_log_maxbackup,
            max_size_mb=args.audit_log_maxsize,
            compress=args.audit_log_compress,
            format=args.audit_log_format,
            mode=args.audit_log_mode,
            batch_buffer_size=args.audit_log_batch_buffer_size,
            batch_max_size=args.audit_log_batch_max_size or 1,
            batch_max_wait=args.audit_log_batch_max_wait,
        ),
    }
