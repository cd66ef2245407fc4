"""``pilothouse images import | ls | rm | pull`` (here beside the local registry fixture)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from pilothouse.cli import images as cli_images
from pilothouse.cli import main
from pilothouse.node.runtime import protocol
from pilothouse.node.runtime.images import testimage


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main.main(["images", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_ls_rm(
    busybox_layout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path)]
    archive = testimage.oci_archive(busybox_layout, tmp_path / "busybox.tar")
    code, out, _ = run(capsys, "import", str(archive), *data)
    assert code == 0
    assert out.startswith("imported docker.io/library/busybox:1.36 sha256:")
    image_id = out.split()[-1]
    assert (tmp_path / "agent" / "images" / "images.json").is_file()

    code, out, _ = run(capsys, "ls", *data)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    repo, tag, short_id, size = lines[1].split()
    assert (repo, tag, short_id) == ("docker.io/library/busybox", "1.36", image_id[7:20])
    assert size.endswith("MB")
    assert lines[0].index("TAG") == lines[1].index("1.36")  # columns line up

    code, out, _ = run(capsys, "ls", "-q", "--no-trunc", *data)
    assert out.split() == [image_id]
    code, out, _ = run(capsys, "ls", "--digests", *data)
    assert out.splitlines()[0].split()[:3] == ["IMAGE", "TAG", "DIGEST"]
    code, out, _ = run(capsys, "ls", "-o", "json", *data)
    [entry] = json.loads(out)["images"]
    assert entry["id"] == image_id and entry["repoTags"] == ["docker.io/library/busybox:1.36"]

    code, out, _ = run(capsys, "rm", "busybox:1.36", *data)
    assert (code, out) == (0, "Deleted: busybox:1.36\n")
    code, out, _ = run(capsys, "ls", *data)
    assert out.splitlines() == ["IMAGE   TAG   IMAGE ID   SIZE"]
    code, _, err = run(capsys, "rm", "busybox:1.36", *data)
    assert code == 1 and 'no such image "busybox:1.36"' in err


def test_import_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "import", str(tmp_path / "nope.tar"), "--data-dir", str(tmp_path))
    assert code == 1 and "no such file" in err
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"junk" * 200)
    code, _, err = run(capsys, "import", str(junk), "--data-dir", str(tmp_path))
    assert code == 1 and "not a readable tar archive" in err


def test_pull(local_registry: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path)]
    code, out, err = run(capsys, "pull", local_registry.busybox, *data)
    assert code == 0, err
    assert out.startswith(f"Pulled {local_registry.busybox} (sha256:")
    assert ": done" in err  # not a terminal: one line per layer
    code, _, err = run(capsys, "pull", f"{local_registry.host}/library/missing:1", "-q", *data)
    assert code == 1 and err.strip().endswith(f"{local_registry.host}/library/missing:1: not found")


def test_pull_with_credentials(
    htpasswd_registry: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path), "-q"]
    code, _, err = run(capsys, "pull", htpasswd_registry.busybox, *data)
    assert code == 1 and "pull access denied" in err
    code, _, err = run(
        capsys, "pull", htpasswd_registry.busybox, "--creds", "alice:wonderland", *data
    )
    assert code == 0, err
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {"auths": {htpasswd_registry.host: {"username": "alice", "password": "wonderland"}}}
        )
    )
    code, _, err = run(capsys, "pull", htpasswd_registry.busybox, "--auth-file", str(config), *data)
    assert code == 0, err


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2 and "import" in err and "pull" in err


def test_progress_display_on_a_terminal() -> None:
    screen = io.StringIO()
    display = cli_images.ProgressDisplay(screen, tty=True)
    display(protocol.PullProgress("r", "sha256:" + "a" * 64, 500_000, 1_000_000))
    display(protocol.PullProgress("r", "sha256:" + "b" * 64, 0, 2_000_000))
    display(protocol.PullProgress("r", "sha256:" + "a" * 64, 1_000_000, 1_000_000, finished=True))
    display(protocol.PullProgress("r", "sha256:" + "b" * 64, 2_000_000, 2_000_000, finished=True))
    text = screen.getvalue()
    assert "aaaaaaaaaaaa: [===============>" in text and "500kB / 1MB" in text
    assert "aaaaaaaaaaaa: done" in text
    assert "\x1b[2F" in text  # redrawn in place: cursor up over the two layer lines


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (1_032_413, "1.03MB"),
        (2_160_000, "2.16MB"),
        (5 * 10**9, "5GB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert cli_images.human_size(size) == text


def test_busybox_makes_a_runnable_image_without_a_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ["--data-dir", str(tmp_path)]
    code, out, _ = run(capsys, "busybox", "--tag", "busybox:1.36", "--tag", "busybox:1.37", *data)
    assert code == 0
    first, second = out.splitlines()
    assert first.startswith("imported busybox:1.36 sha256:")
    assert second.startswith("imported busybox:1.37 sha256:")
    assert first.split()[2] == second.split()[2]  # one image, two names
    code, out, _ = run(capsys, "ls", *data)
    rows = [line.split()[:2] for line in out.splitlines()[1:]]
    assert rows == [["docker.io/library/busybox", "1.36"], ["docker.io/library/busybox", "1.37"]]

    # Without busybox-static the command says what to install.
    monkeypatch.setattr(testimage, "BUSYBOX_CANDIDATES", (tmp_path / "missing",))
    code, _, err = run(capsys, "busybox", *data)
    assert code == 1 and "apt-get install busybox-static" in err


def test_pull_follows_registries_yaml(
    local_registry: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DATA_DIR/registries.yaml is the node's; `images pull` follows it too (here a "*"
    mirror for a made-up loopback registry, so no request leaves the machine)."""
    registry = "127.0.0.1:9"  # the discard port: nothing answers there
    (tmp_path / "registries.yaml").write_text(
        f'mirrors:\n  "*":\n    endpoint: ["http://{local_registry.host}"]\n'
    )
    code, out, err = run(
        capsys, "pull", "-q", f"{registry}/library/busybox:1.36", "--data-dir", str(tmp_path),
        "--disable-default-registry-endpoint",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith(f"Pulled {registry}/library/busybox:1.36 (sha256:")
    (tmp_path / "registries.yaml").write_text("mirrors: [\n")
    code, _, err = run(capsys, "pull", "-q", "busybox", "--data-dir", str(tmp_path))
    assert code == 1
    assert f"cannot use {tmp_path / 'registries.yaml'}: " in err
