"""Levels, versions and the policy a namespace's labels select (upstream ``api/helpers.go``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pilothouse.api import errors

PRIVILEGED = "privileged"
BASELINE = "baseline"
RESTRICTED = "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)

LABEL_PREFIX = "pod-security.kubernetes.io/"
ENFORCE = LABEL_PREFIX + "enforce"
ENFORCE_VERSION = LABEL_PREFIX + "enforce-version"
AUDIT = LABEL_PREFIX + "audit"
AUDIT_VERSION = LABEL_PREFIX + "audit-version"
WARN = LABEL_PREFIX + "warn"
WARN_VERSION = LABEL_PREFIX + "warn-version"

# Audit annotation keys (prefixed with LABEL_PREFIX when recorded).
EXEMPT = "exempt"
AUDIT_VIOLATIONS = "audit-violations"
ENFORCE_POLICY = "enforce-policy"

_VERSION_RE = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")
LEVEL_ERROR = "must be one of privileged, baseline, restricted"
VERSION_ERROR = 'must be "latest" or "v1.x"'


@dataclass(frozen=True, slots=True, order=False)
class Version:
    """``v1.25`` or ``latest`` (newer than any numbered version)."""

    major: int = 0
    minor: int = 0
    latest: bool = False

    def __str__(self) -> str:
        return "latest" if self.latest else f"v{self.major}.{self.minor}"

    def older(self, other: Version) -> bool:
        if self.latest:
            return False
        if other.latest:
            return True
        return (self.major, self.minor) < (other.major, other.minor)


LATEST = Version(latest=True)


def version(major: int, minor: int) -> Version:
    return Version(major, minor)


@dataclass(frozen=True, slots=True)
class LevelVersion:
    level: str
    version: Version

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"

    def equivalent(self, other: LevelVersion) -> bool:
        return (self.level == PRIVILEGED and other.level == PRIVILEGED) or self == other


@dataclass(frozen=True, slots=True)
class Policy:
    enforce: LevelVersion
    audit: LevelVersion
    warn: LevelVersion

    def fully_privileged(self) -> bool:
        return PRIVILEGED == self.enforce.level == self.audit.level == self.warn.level

    def equivalent(self, other: Policy) -> bool:
        return (
            self.enforce.equivalent(other.enforce)
            and self.audit.equivalent(other.audit)
            and self.warn.equivalent(other.warn)
        )


PRIVILEGED_LATEST = LevelVersion(PRIVILEGED, LATEST)
DEFAULT_POLICY = Policy(PRIVILEGED_LATEST, PRIVILEGED_LATEST, PRIVILEGED_LATEST)


def parse_level(value: str) -> str | None:
    return value if value in LEVELS else None


def parse_version(value: str) -> Version | None:
    if value == "latest":
        return LATEST
    match = _VERSION_RE.match(value)
    if match is None:
        return None
    return Version(1, int(match.group(1)))


def compare_levels(a: str, b: str) -> int:
    """-1, 0 or 1 as level ``a`` is less, as or more restrictive than ``b``."""
    ia, ib = LEVELS.index(a), LEVELS.index(b)
    return (ia > ib) - (ia < ib)


@dataclass
class _Parsed:
    enforce_level: str
    enforce_version: Version
    audit_level: str
    audit_version: Version
    warn_level: str
    warn_version: Version
    errs: list[errors.FieldError] = field(default_factory=list)


def policy_to_evaluate(
    labels: dict[str, str] | None, defaults: Policy = DEFAULT_POLICY
) -> tuple[Policy, list[errors.FieldError]]:
    """The policy a namespace's labels select over ``defaults``, and the labels' errors.
    A bad enforce label enforces ``restricted`` (fail closed); bad audit and warn labels
    turn those modes off (fail open), as upstream."""
    p = _Parsed(
        defaults.enforce.level,
        defaults.enforce.version,
        defaults.audit.level,
        defaults.audit.version,
        defaults.warn.level,
        defaults.warn.version,
    )
    if not labels:
        return defaults, []

    def bad(label: str, value: str, message: str) -> None:
        p.errs.append(errors.invalid_value(f"metadata.labels[{label}]", value, message))

    has_enforce_level = False
    if ENFORCE in labels:
        level = parse_level(labels[ENFORCE])
        p.enforce_level = level or RESTRICTED
        has_enforce_level = level is not None
        if level is None:
            bad(ENFORCE, labels[ENFORCE], LEVEL_ERROR)
    if ENFORCE_VERSION in labels:
        v = parse_version(labels[ENFORCE_VERSION])
        p.enforce_version = v or LATEST
        if v is None:
            bad(ENFORCE_VERSION, labels[ENFORCE_VERSION], VERSION_ERROR)
    if AUDIT in labels:
        level = parse_level(labels[AUDIT])
        p.audit_level = level or PRIVILEGED
        if level is None:
            bad(AUDIT, labels[AUDIT], LEVEL_ERROR)
    if AUDIT_VERSION in labels:
        v = parse_version(labels[AUDIT_VERSION])
        p.audit_version = v or LATEST
        if v is None:
            bad(AUDIT_VERSION, labels[AUDIT_VERSION], VERSION_ERROR)
    has_warn_level = WARN in labels
    if has_warn_level:
        level = parse_level(labels[WARN])
        p.warn_level = level or PRIVILEGED
        if level is None:
            bad(WARN, labels[WARN], LEVEL_ERROR)
    has_warn_version = WARN_VERSION in labels
    if has_warn_version:
        v = parse_version(labels[WARN_VERSION])
        p.warn_version = v or LATEST
        if v is None:
            bad(WARN_VERSION, labels[WARN_VERSION], VERSION_ERROR)
    # Without a warn label, warn at least at the enforced level: users see why a pod
    # a controller makes would be refused.
    if (
        not has_warn_level
        and has_enforce_level
        and compare_levels(p.enforce_level, p.warn_level) > 0
    ):
        p.warn_level = p.enforce_level
        if not has_warn_version:
            p.warn_version = p.enforce_version
    policy = Policy(
        LevelVersion(p.enforce_level, p.enforce_version),
        LevelVersion(p.audit_level, p.audit_version),
        LevelVersion(p.warn_level, p.warn_version),
    )
    return policy, p.errs
