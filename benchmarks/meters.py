"""CPU seconds each process used over a phase, and what else ran on the machine meanwhile."""

from __future__ import annotations

import os
from typing import Any

try:
    import psutil
except ImportError:  # CPU accounting is skipped without it
    psutil = None

from .stats import clock, table

# ---------------------------------------------------------------- CPU accounting


class CpuMeter:
    """CPU seconds used by each part (broker, server incl. workers, bridge, this process) over a phase
    (``profiler``: a ``benchmarks.profiling.Profiler`` whose own CPU is counted apart)."""

    def __init__(self, stack: Any, profiler: Any = None):
        self.parts = {"broker": stack.broker.proc.pid, "server": stack.server.proc.pid,
                      "bridge": stack.bridge.proc.pid, "benchmark": os.getpid()}
        self.profiler = profiler
        self._start: dict[str, float] = {}
        self._t0 = self._busy0 = self._steal0 = 0.0

    def _cpu(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if psutil is None:
            return out
        for name, pid in self.parts.items():
            total = 0.0
            try:
                procs = [psutil.Process(pid)]
                if name != "benchmark":
                    procs += procs[0].children(recursive=True)
                for p in procs:
                    try:
                        t = p.cpu_times()
                        total += t.user + t.system
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            out[name] = total
        if self.profiler is not None:
            out["py-spy"] = self.profiler.cpu()
        return out

    @staticmethod
    def _machine() -> tuple[float, float]:
        """(CPU seconds the machine's processes used, CPU seconds the hypervisor stole) so far."""
        if psutil is None:
            return 0.0, 0.0
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        return busy, getattr(t, "steal", 0.0)

    def start(self) -> None:
        self._start = self._cpu()
        self._busy0, self._steal0 = self._machine()
        self._t0 = clock()

    def stop(self) -> dict[str, Any]:
        end, wall = self._cpu(), clock() - self._t0
        used = {k: round(end[k] - self._start.get(k, 0.0), 3) for k in end}
        busy, steal = self._machine()
        if psutil is not None:
            # Everything else the machine did meanwhile (other people's tests, py-spy, ...).
            used["other processes"] = round(max(0.0, busy - self._busy0 - sum(used.values())), 3)
        return {"wall_s": round(wall, 3), "cpu_s": used, "cpu_total_s": round(sum(used.values()), 3),
                "cores": os.cpu_count(), "steal_s": round(steal - self._steal0, 3)}


def cpu_lines(cpu: dict[str, Any], per: int, what: str = "press") -> str:
    if not cpu.get("cpu_s"):
        return "  (psutil not installed: no CPU accounting)"
    wall = cpu["wall_s"]
    rows = [[k, v, v / wall * 100, v / per * 1000] for k, v in cpu["cpu_s"].items()]
    rows.append(["total", cpu["cpu_total_s"], cpu["cpu_total_s"] / wall * 100, cpu["cpu_total_s"] / per * 1000])
    text = table(rows, ["process", "cpu s", "% of 1 core", f"cpu ms/{what}"]) + \
        f"\n  over {wall:.2f} s of wall time on {cpu['cores']} cores ({cpu['cores'] * 100}% = all busy); " \
        f"hypervisor steal {cpu.get('steal_s', 0.0) / wall * 100:.0f}% of a core"
    other = cpu["cpu_s"].get("other processes", 0.0) / wall * 100
    if other > 10:
        text += (f"\n  WARNING: other processes used {other:.0f}% of a core meanwhile: "
                 "this run's figures are disturbed")
    return text


class PartsMeter(CpuMeter):
    """A :class:`CpuMeter` over any processes by name (``{"server": pid}``), each with its children."""

    def __init__(self, parts: dict[str, int]):
        self.parts = {**parts, "benchmark": os.getpid()}
        self.profiler = None
        self._start = {}
        self._t0 = self._busy0 = self._steal0 = 0.0


def quiet(cpu: dict[str, Any]) -> bool:
    wall = max(cpu.get("wall_s", 1.0), 1e-9)
    return (cpu.get("cpu_s", {}).get("other processes", 0.0) / wall <= 0.10
            and cpu.get("steal_s", 0.0) / wall <= 0.10)


def disturbance_line(cpu: dict[str, Any]) -> str:
    """One line on what else ran on the machine during the whole measurement."""
    if not cpu.get("cpu_s"):
        return ""
    wall = cpu["wall_s"]
    other = cpu["cpu_s"].get("other processes", 0.0) / wall * 100
    steal = cpu.get("steal_s", 0.0) / wall * 100
    verdict = "quiet" if quiet(cpu) else "DISTURBED: repeat on a quiet machine"
    return (f"machine during all phases ({wall:.0f} s): other processes {other:.0f}% of a core, "
            f"hypervisor steal {steal:.0f}% ({verdict})")



def print_cpu(title: str, cpu: dict[str, Any], whole: dict[str, Any], per: int, what: str = "press") -> None:
    """The CPU each part used in the timed phase (``cpu``, per ``what``), and what else ran on the machine
    over the whole measurement (``whole``)."""
    print()
    print(title)
    print(cpu_lines(cpu, max(1, per), what))
    print(disturbance_line(whole))


