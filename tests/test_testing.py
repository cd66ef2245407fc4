"""The public test helpers' node configuration: test nodes ignore the machine's disk fill."""

from __future__ import annotations

from pathlib import Path

from pilothouse import testing
from pilothouse.node import kubeletconfig


def test_test_nodes_have_no_disk_eviction_and_keep_memory_eviction() -> None:
    config = kubeletconfig.parse(testing.NODE_CONFIG)
    signals = {t.signal for t in config.thresholds}
    assert signals == {"memory.available"}  # upstream's default stays
    assert config.image_gc_high_threshold_percent == 100
    assert not config.ignored


def test_a_server_process_with_an_agent_gets_the_test_node_config(tmp_path: Path) -> None:
    with_agent = testing.ServerProcess(tmp_path / "a", agent=True)
    args = with_agent._node_args()
    assert args[0] == "--kubelet-config"
    assert Path(args[1]).read_text() == testing.NODE_CONFIG
    own = ["--kubelet-config", str(tmp_path / "mine.yaml")]
    assert testing.ServerProcess(tmp_path / "b", agent=True, extra_args=own)._node_args() == []
    assert testing.ServerProcess(tmp_path / "c")._node_args() == ["--disable-agent"]
