"""Where the suite's CPU goes, module by module (docs/testing.md "Where the time goes").

With ONERECORD_TEST_CPU_PROFILE=DIR each pytest worker samples, once a second, the CPU time
(user + system) of its own process and every process below it (the networks' services,
chromium, command-line runs) and charges the growth to the test module running then. At the
end it writes DIR/cpu-<worker>.json: per module the wall seconds and the CPU seconds.
`python -m tests.support.cpu_profile DIR` adds the workers' files up into one table.

A process that starts and ends between two samples is not seen (a short command-line run):
the figures are a floor, good for comparing modules, not an exact account.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil
import pytest

_INTERVAL_S = 1.0


class CpuProfile:
    """Samples the process tree's CPU and charges it to the current test module."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.current = "(worker start-up)"
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self._seen: dict[tuple[int, float], float] = {}
        self._kinds: dict[tuple[int, float], str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last_wall = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def _tree_cpu(self) -> dict[tuple[int, float], float]:
        me = psutil.Process()
        found: dict[tuple[int, float], float] = {}
        for proc in [me, *me.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                key = (proc.pid, proc.create_time())
                found[key] = times.user + times.system
                if key not in self._kinds:
                    self._kinds[key] = _kind(proc)
            except psutil.Error:
                continue
        return found

    def _sample(self) -> None:
        now_cpu = self._tree_cpu()
        # Every process ever seen stays known: one that a sample missed (a psutil error in
        # that moment) must not be counted from zero again at the next.
        grown = sum(max(cpu - self._seen.get(key, 0.0), 0.0) for key, cpu in now_cpu.items())
        now = time.monotonic()
        with self._lock:
            self.cpu[self.current] += grown
            self.wall[self.current] += now - self._last_wall
            self._last_wall = now
            self._seen.update(now_cpu)

    def _run(self) -> None:
        while not self._stop.wait(_INTERVAL_S):
            self._sample()

    def switch(self, module: str) -> None:
        if module != self.current:
            self._sample()
            with self._lock:
                self.current = module

    def finish(self, worker: str) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        body: dict[str, Any] = {
            m: {"cpu_s": round(self.cpu[m], 1), "wall_s": round(self.wall[m], 1)} for m in self.cpu
        }
        kinds: dict[str, float] = defaultdict(float)
        for key, cpu in self._seen.items():
            kinds[self._kinds.get(key, "?")] += cpu
        body["(by process)"] = {
            k: round(v, 1) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])
        }
        (self.out_dir / f"cpu-{worker}.json").write_text(json.dumps(body, indent=1))


def _kind(proc: psutil.Process) -> str:
    """What a process is, for the by-process total: `onerecord.cli hub`, `chrome`, `pytest`."""
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return "?"
    if "onerecord.cli" in cmd:
        at = cmd.index("onerecord.cli")
        return " ".join(cmd[at : at + 3 if len(cmd) > at + 2 and cmd[at + 1] != "demo" else at + 2])
    if (
        cmd
        and cmd[0].endswith(("python", "python3"))
        and any("pytest" in c or "xdist" in c for c in cmd)
    ):
        return "pytest"
    return Path(cmd[0]).name if cmd else proc.name()


_profile: CpuProfile | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _profile
    out = os.environ.get("ONERECORD_TEST_CPU_PROFILE")
    # Only where tests run: in each xdist worker, or in a run without workers.
    if out and (hasattr(config, "workerinput") or not config.getoption("numprocesses", None)):
        _profile = CpuProfile(Path(out))
        _profile.start()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _profile is not None:
        _profile.switch(item.nodeid.split("::")[0])


def pytest_unconfigure(config: pytest.Config) -> None:
    if _profile is not None:
        worker = getattr(config, "workerinput", {}).get("workerid", "main")
        _profile.finish(worker)


def _table(out_dir: Path) -> list[tuple[str, float, float]]:
    cpu: dict[str, float] = defaultdict(float)
    wall: dict[str, float] = defaultdict(float)
    for file in out_dir.glob("cpu-*.json"):
        data: dict[str, Any] = json.loads(file.read_text())
        for kind, seconds in data.pop("(by process)", {}).items():
            cpu[f"[process] {kind}"] += seconds
        for module, figures in data.items():
            cpu[module] += figures["cpu_s"]
            wall[module] += figures["wall_s"]
    return sorted(((m, cpu[m], wall[m]) for m in cpu), key=lambda row: -row[1])


if __name__ == "__main__":
    rows = _table(Path(sys.argv[1]))
    lines = [f"{'CPU s':>8} {'wall s':>8}  module"]
    lines += [f"{cpu_s:8.1f} {wall_s:8.1f}  {module}" for module, cpu_s, wall_s in rows]
    lines.append(f"{sum(r[1] for r in rows):8.1f} {sum(r[2] for r in rows):8.1f}  (all)")
    sys.stdout.write("\n".join(lines) + "\n")
