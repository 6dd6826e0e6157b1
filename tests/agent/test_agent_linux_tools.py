"""Each Linux tool run for real on this machine, checked against what the kernel and the OS say."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mspclaw.agent.tools import ToolContext, temp_roots, tool_registry
from mspclaw.agent.tools import linux as lt
from mspclaw.agent.tools.portable import check_connectivity
from mspclaw.errors import ConfigError, ToolFailed
from mspclaw.tools.catalogue import (
    CATALOGUE,
    CheckConnectivityArgs,
    ClearTempFilesArgs,
    DiskUsageArgs,
    NoArgs,
    TopProcessesArgs,
)


def test_every_catalogue_device_tool_is_implemented_on_linux() -> None:
    device = {n for n, s in CATALOGUE.items() if s.runs_on == "device" and "linux" in s.os}
    assert set(tool_registry("linux")) == device
    assert "restart_print_spooler" in device  # starts CUPS through systemd when its scheduler is stopped


def test_system_info_matches_the_kernel(context: ToolContext) -> None:
    out = lt.system_info(NoArgs(), context)
    assert out["hostname"] == socket.gethostname()
    assert out["kernel"] == platform.release()
    assert out["arch"] == platform.machine()
    assert out["cpu"]["count"] == os.cpu_count()
    assert out["cpu"]["model"]
    mem = out["memory"]
    assert 0 < mem["available_bytes"] <= mem["total_bytes"]
    assert mem["total_bytes"] == lt._meminfo()["MemTotal"]
    assert out["uptime_s"] > 0
    assert set(out["load_average"]) == {"1m", "5m", "15m"}
    assert isinstance(out["users"], list)
    release = Path("/etc/os-release").read_text()
    assert out["os"]["name"] in release


def test_disk_usage_lists_the_root_filesystem_and_no_pseudo_ones(context: ToolContext) -> None:
    out = lt.disk_usage(DiskUsageArgs(), context)
    points = {fs["mount_point"]: fs for fs in out["filesystems"]}
    assert "/" in points
    for fs in out["filesystems"]:
        assert fs["fstype"] not in lt.PSEUDO_FILESYSTEMS
        assert fs["total_bytes"] >= fs["used_bytes"] >= 0
        assert fs["total_bytes"] >= fs["free_bytes"] >= 0
        assert 0.0 <= fs["percent_used"] <= 100.0
    root = points["/"]
    st = os.statvfs("/")
    assert root["total_bytes"] == st.f_blocks * st.f_frsize
    assert root["total_bytes"] > 0


def test_disk_usage_of_a_given_path_names_its_mount(context: ToolContext, tmp_path: Path) -> None:
    out = lt.disk_usage(DiskUsageArgs(paths=[str(tmp_path)]), context)
    [fs] = out["filesystems"]
    assert fs["path"] == str(tmp_path)
    assert str(tmp_path).startswith(fs["mount_point"])
    assert fs["total_bytes"] >= fs["used_bytes"]


def test_disk_usage_of_a_missing_path_fails_naming_it(context: ToolContext) -> None:
    with pytest.raises(ToolFailed, match="/no/such/place"):
        lt.disk_usage(DiskUsageArgs(paths=["/no/such/place"]), context)


def test_top_processes_by_memory_finds_a_big_process(context: ToolContext) -> None:
    size = 200 * 1024 * 1024
    code = f"import sys, time; b = b'x' * {size}; print('ready', flush=True); time.sleep(30)"
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as big:
        try:
            assert big.stdout is not None and big.stdout.readline() == "ready\n"
            out = lt.top_processes(TopProcessesArgs(sort_by="memory", limit=50), context)
        finally:
            big.kill()
    procs = out["processes"]
    assert 0 < len(procs) <= 50 and out["total_processes"] >= len(procs)
    rss = [p["rss_bytes"] for p in procs]
    assert rss == sorted(rss, reverse=True)
    mine = next(p for p in procs if p["pid"] == big.pid)
    assert mine["rss_bytes"] >= size
    assert mine["memory_percent"] == pytest.approx(100 * mine["rss_bytes"] / out["memory_total_bytes"], abs=0.01)


def test_top_processes_measures_cpu_of_a_busy_process(context: ToolContext) -> None:
    with subprocess.Popen([sys.executable, "-c", "print(flush=True)\nwhile True: pass"],
                          stdout=subprocess.PIPE) as busy:
        try:
            assert busy.stdout is not None
            busy.stdout.readline()  # started: the sample covers the spinning, not the interpreter's start-up
            out = lt.top_processes(TopProcessesArgs(sort_by="cpu", limit=5), context)
        finally:
            busy.kill()
    assert out["sample_s"] >= lt.CPU_SAMPLE_S
    cpu = [p["cpu_percent"] for p in out["processes"]]
    assert cpu == sorted(cpu, reverse=True)
    top = next(p for p in out["processes"] if p["pid"] == busy.pid)
    # one core spinning; on a machine shared with other work it still gets a good share of a core
    assert top["cpu_percent"] > 15
    assert top["user"] and top["name"].startswith("python")


def test_network_status_reports_loopback_and_the_default_route(context: ToolContext) -> None:
    out = lt.network_status(NoArgs(), context)
    by_name = {i["name"]: i for i in out["interfaces"]}
    assert "127.0.0.1/8" in by_name["lo"]["ipv4"]
    assert set(by_name) == set(os.listdir("/sys/class/net"))
    assert out["source"] == ("ip" if shutil.which("ip") else "proc")
    if out["default_route"] is not None:
        assert out["default_route"]["interface"] in by_name
    servers = [line.split()[1] for line in Path("/etc/resolv.conf").read_text().splitlines()
               if line.startswith("nameserver")]
    assert out["dns"]["servers"] == servers


def test_network_fallback_without_ip_agrees_with_ip(context: ToolContext) -> None:
    from_sys = {i["name"]: i for i in lt._interfaces_from_sys()}
    assert "127.0.0.1/8" in from_sys["lo"]["ipv4"]
    assert from_sys["lo"]["mac"] == "00:00:00:00:00:00"
    if shutil.which("ip"):
        from_ip = {i["name"]: i for i in lt._interfaces_from_ip()}
        assert set(from_sys) == set(from_ip)
        for name, iface in from_ip.items():
            assert from_sys[name]["mac"] == iface["mac"]
            assert set(from_sys[name]["ipv6"]) == set(iface["ipv6"])
            assert set(from_sys[name]["ipv4"]) <= set(iface["ipv4"])
        ipv4_default = lt._default_route_from_proc()
        if ipv4_default is not None:  # an IPv6-only machine has none in /proc/net/route
            assert ipv4_default == lt._default_route_from_ip()


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_check_connectivity_reaches_an_open_port(context: ToolContext, listener: int) -> None:
    out = check_connectivity(CheckConnectivityArgs(host="127.0.0.1", port=listener, timeout_s=2), context)
    assert out["reachable"] is True
    assert out["dns"] == {"ok": True, "addresses": ["127.0.0.1"], "ms": out["dns"]["ms"], "error": None}
    assert out["tcp"]["ok"] is True and out["tcp"]["address"] == "127.0.0.1" and out["tcp"]["error"] is None
    assert out["tcp"]["ms"] >= 0


def test_check_connectivity_resolves_localhost_by_name(context: ToolContext, listener: int) -> None:
    out = check_connectivity(CheckConnectivityArgs(host="localhost", port=listener, timeout_s=2), context)
    assert out["dns"]["ok"] is True
    assert out["dns"]["addresses"]


def test_check_connectivity_reports_a_closed_port(context: ToolContext) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        out = check_connectivity(CheckConnectivityArgs(host="127.0.0.1", port=port, timeout_s=2), context)
    assert out["reachable"] is False
    assert out["dns"]["ok"] is True
    assert out["tcp"]["ok"] is False
    assert "refused" in out["tcp"]["error"]


def test_check_connectivity_reports_a_failed_lookup_as_output(context: ToolContext) -> None:
    out = check_connectivity(CheckConnectivityArgs(host="no-such-host.invalid", port=443, timeout_s=2), context)
    assert out["reachable"] is False
    assert out["dns"]["ok"] is False
    assert out["dns"]["addresses"] == []
    assert out["dns"]["error"]
    assert out["tcp"]["ok"] is False
    assert out["dns"]["ms"] <= 2500


# --- clear_temp_files --------------------------------------------------------------------------


MakeFile = Callable[[Path, int, float], Path]


@pytest.fixture
def populated(temp_root: Path, make_file: MakeFile) -> dict[str, list[Path]]:
    old = [
        make_file(temp_root / "old-1.log", 1000, 30),
        make_file(temp_root / "nested" / "deeper" / "old-2.bin", 2345, 10),
    ]
    new = [
        make_file(temp_root / "fresh.txt", 500, 0),
        make_file(temp_root / "nested" / "recent.tmp", 70, 2),
    ]
    return {"old": old, "new": new}


def test_clear_temp_files_dry_run_counts_old_files_and_deletes_nothing(
    context: ToolContext, temp_root: Path, populated: dict[str, list[Path]]
) -> None:
    out = lt.clear_temp_files(ClearTempFilesArgs(older_than_days=7, dry_run=True), context)
    assert out["dry_run"] is True
    assert out["roots"] == [str(temp_root)]
    assert out["files"] == 2
    assert out["bytes"] == 1000 + 2345
    assert sorted(out["sample"]) == sorted(str(p) for p in populated["old"])
    assert "deleted" not in out
    assert all(p.exists() for p in populated["old"] + populated["new"])


def test_clear_temp_files_deletes_exactly_the_old_files(
    context: ToolContext, populated: dict[str, list[Path]]
) -> None:
    out = lt.clear_temp_files(ClearTempFilesArgs(older_than_days=7, dry_run=False), context)
    assert out["deleted"] == 2
    assert out["freed_bytes"] == 1000 + 2345
    assert not any(p.exists() for p in populated["old"])
    assert all(p.exists() for p in populated["new"])
    assert out["errors"] == []


def test_clear_temp_files_never_follows_links_out_of_the_root(
    context: ToolContext, temp_root: Path, tmp_path: Path, make_file: MakeFile
) -> None:
    outside = tmp_path / "outside"
    victim_file = make_file(outside / "precious.doc", 4096, 365)
    victim_in_dir = make_file(outside / "dir" / "also-precious.doc", 4096, 365)
    (temp_root / "link-to-file").symlink_to(victim_file)
    (temp_root / "link-to-dir").symlink_to(victim_in_dir.parent, target_is_directory=True)
    assert stat.S_ISLNK(os.lstat(temp_root / "link-to-file").st_mode)

    dry = lt.clear_temp_files(ClearTempFilesArgs(older_than_days=0, dry_run=True), context)
    out = lt.clear_temp_files(ClearTempFilesArgs(older_than_days=0, dry_run=False), context)

    assert dry["files"] == 0 and out["deleted"] == 0
    assert victim_file.read_bytes() == b"x" * 4096
    assert victim_in_dir.exists()
    assert (temp_root / "link-to-file").is_symlink() and (temp_root / "link-to-dir").is_symlink()


def test_clear_temp_files_skips_sockets_and_fifos(context: ToolContext, temp_root: Path) -> None:
    fifo = temp_root / "a-fifo"
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(temp_root / "a.sock"))
    try:
        for path in (fifo, temp_root / "a.sock"):
            os.utime(path, (0, 0), follow_symlinks=False)
        out = lt.clear_temp_files(ClearTempFilesArgs(older_than_days=0, dry_run=False), context)
    finally:
        sock.close()
    assert out["deleted"] == 0
    assert fifo.exists() and (temp_root / "a.sock").exists()


def test_temp_roots_refuse_system_directories_and_relative_paths() -> None:
    for bad in ("/", "/etc", "/usr", "/home"):
        with pytest.raises(ConfigError, match="system directory"):
            temp_roots([bad])
    with pytest.raises(ConfigError, match="absolute"):
        temp_roots(["tmp"])
    assert all(root.is_absolute() for root in temp_roots(None))
