"""The durable record of each container, kept beside its OCI bundle.

``container.json`` is written before conmon starts (so a restarted agent finds
and can remove a container whose start was cut short) and again at each step:
created (pid known), started, finished (exit code and reason, read once from
conmon's exit file and the memory cgroup, kept after ``crun delete``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pilothouse import atomicfile
from pilothouse.node.runtime import protocol

RECORD = "container.json"


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` in one step: readers see the old or the new content, never half.

    Not fsynced (as before the shared helper): the runtime writes these files on the
    event loop at every step of every pod and container, where two fsyncs each would
    stall the agent, and a power cut ends every container they describe anyway."""
    atomicfile.write(path, data, mode=mode, durable=False)


@dataclass
class ContainerRecord:
    """What we keep about one container; survives agent restarts."""

    id: str
    sandbox_id: str
    name: str
    attempt: int
    image_id: str
    image_ref: str
    log_path: str
    cgroup_path: str
    created_at: float
    tty: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    mounted: bool = False
    pid: int = 0
    pid_start: int = 0
    conmon_pid: int = 0
    conmon_start: int = 0
    started_at: float = 0.0
    finished: bool = False
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""

    def save(self, bundle: Path) -> None:
        write_atomic(bundle / RECORD, json.dumps(asdict(self), indent=1).encode())

    @classmethod
    def load(cls, bundle: Path) -> ContainerRecord | None:
        try:
            raw: dict[str, Any] = json.loads((bundle / RECORD).read_text())
        except (OSError, ValueError):
            return None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})

    def status(self, state: str) -> protocol.ContainerStatus:
        return protocol.ContainerStatus(
            id=self.id,
            sandbox_id=self.sandbox_id,
            name=self.name,
            attempt=self.attempt,
            image_id=self.image_id,
            image_ref=self.image_ref,
            state=state,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            exit_code=self.exit_code,
            reason=self.reason,
            message=self.message,
            pid=self.pid if state in ("created", "running") else 0,
            log_path=self.log_path,
        )
