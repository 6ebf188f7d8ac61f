"""Third-party engines the exports are proven on (Phoenix, the LiteLLM proxy, LangGraph's
server), each in a virtualenv of its own, since they pin their own dependencies. The test set-up
makes each once per set of pins under ~/.cache/workbench/engines/ (a cache: deleting it is
safe) and starts them on loopback; they are stopped by their PID."""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

CACHE = Path(os.environ.get("WORKBENCH_ENGINES", Path.home() / ".cache" / "workbench" / "engines"))


def engine_venv(name: str, requirements: list[str]) -> Path:
    """The python of a virtualenv holding ``requirements``, made on first use (under a lock:
    xdist workers may ask at once)."""
    key = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:12]
    root = CACHE / f"{name}-{key}"
    python = root / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / ".complete").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    *requirements,
                ],
                check=True,
                timeout=1200,
            )
            (root / ".complete").touch()
    return python


class Engine:
    """A server process on loopback, waited for until ``ready_url`` answers, stopped by PID."""

    def __init__(
        self, command: list[str], env: dict[str, str], ready_url: str, log: Path, timeout_s=180, cwd=None
    ):
        self.log = log
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(ready_url, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{ready_url} did not answer in {timeout_s} s:\n{self.tail()}")
            time.sleep(0.5)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets ``pid`` listens on, read from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                address, port = local.split(":")
                found.add((_address(address), int(port, 16)))
    return found


def _address(hexed: str) -> str:
    raw = bytes.fromhex(hexed)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]  # each 32-bit word is little-endian
    full = b"".join(words)
    if full[:12] == b"\0" * 10 + b"\xff\xff":
        return "::ffff:" + ".".join(str(b) for b in full[12:])
    return "::" if full == b"\0" * 16 else full.hex()
