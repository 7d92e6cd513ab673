"""What the benches read of a process and a directory: memory from /proc/<pid>/status, and bytes
on disk.

Peak memory is VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent,
so a child started by a big bench process would report the parent's size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def status_mb(*keys: str, pid: int | str = "self") -> dict[str, float]:
    """Fields of /proc/<pid>/status in MB (0 when absent, or when the process is gone)."""
    out = dict.fromkeys(keys, 0.0)
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in out:
            out[key] = int(value.split()[0]) / 1024
    return out


def peak_mb(pid: int | str = "self") -> float:
    """The process's peak RSS (VmHWM) in MB."""
    return status_mb("VmHWM", pid=pid)["VmHWM"]


def dir_bytes(path: Path, skip: Callable[[Path], bool] = lambda p: False) -> int:
    """Bytes of the files under `path`, but those `skip` names."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not skip(f))
