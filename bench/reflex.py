"""Benchmark: the force reflex, from a crossing F/T packet to the halt at the robot, beside a bare reference path.

Three processes besides this one:

- the rig: the simulated devices (`SimFTSensor` at 1 kHz over UDP, `SimRobot` over Modbus TCP), one pair per
  measured path, in an event loop of their own with no load, as real devices would be. At a random moment it
  makes one path's force cross the limit; latency runs from the send time of the first crossing record to the
  arrival of the HALT write at that path's simulated robot (its request hook), both `time.perf_counter`
  (CLOCK_MONOTONIC, system-wide on Linux) in the rig.
- the reflex process (`cellctl.runtime.reflex_process`, the default path), armed and disarmed by this process around
  each crossing as the controller does around a guarded motion; this process also runs an `FTSensor` on its
  relay and a `RobotDriver` (polling at 200 Hz, releasing the latch before each trial), as the controller does.
- the reference: a bare loop with no framework (blocking UDP receive, unpack, |F| > limit, blocking TCP send
  of the prebuilt FC6 frame) on its own sensor and robot, measured the same way in the same run, trials
  interleaved with the reflex's in random order: the physical limit of this machine for that path.

With `--inloop` the old in-loop `ForceGuard` (a tap on this process's FTSensor, the halt on RobotDriver's halt
link) is measured instead of the reflex process. A CPU-heavy numpy/open3d job runs in a worker thread of this
process (the controller's main process) unless `--no-load`. The reflex process, the reference and the rig run
under SCHED_FIFO when permitted (the reflex at the priority its config sets, the reference at the same, the
rig above them: it stands for devices on other machines); `--sched nice|normal` runs the reflex and the
reference at nice -20 or as normal processes, `--no-rt` runs all three as normal processes.

Usage: python bench/reflex.py [--trials N] [--no-load] [--inloop] [--sched fifo|nice|normal] [--no-rt] [--json]
"""

from __future__ import annotations

# Only the standard library at import: this file is also the reference worker and must start bare.
import argparse
import contextlib
import json
import math
import os
import random
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LIMIT_N = 20.0
BELOW_N = 5.0
ABOVE_N = 30.0
RT_PRIORITY = 50  # the reflex process's default (ReflexConfig.sched_priority); the reference gets the same
RIG_PRIORITY = 60
NICE = -20
RECORD = struct.Struct(">IIIiiiiii")


# --- the bare reference path (standard library only) -------------------------------------------------------------


def reference_worker(cfg: dict[str, Any]) -> None:
    """Blocking UDP receive -> unpack -> |F| > limit -> blocking TCP send of a prebuilt FC6 frame. Nothing else."""
    prio, nice = int(cfg["sched_priority"]), int(cfg["nice"])
    if prio:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))
    elif nice:
        with contextlib.suppress(OSError):
            os.nice(nice)
    sensor = (cfg["sensor_host"], int(cfg["sensor_port"]))
    tcp = socket.create_connection((cfg["robot_host"], int(cfg["robot_port"])))
    tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.sendto(struct.pack(">HHI", 0x1234, 0x0002, 0), sensor)  # RDT start, stream forever
    unit, cpf, limit = int(cfg["unit_id"]), float(cfg["counts_per_force"]), float(cfg["limit_n"])
    frame = struct.pack(">HHHB", 1, 0, 6, unit) + bytes((6, 0, 19, 0, 1))  # FC6 HR19 := 1
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    unpack, sqrt, recvfrom = RECORD.unpack, math.sqrt, udp.recvfrom
    armed = True
    while True:
        data, addr = recvfrom(64)
        if len(data) != 36 or addr[1] != sensor[1] or addr[0] != sensor[0]:
            continue
        _, _, _, fx, fy, fz, _, _, _ = unpack(data)
        x, y, z = fx / cpf, fy / cpf, fz / cpf
        f = sqrt(x * x + y * y + z * z)
        if armed and f > limit:
            tcp.send(frame)
            armed = False
            tcp.recv(64)  # the echo (after the measured write)
        elif not armed and f <= limit:
            armed = True


# --- the rig: simulated devices in a process of their own --------------------------------------------------------


def rig_main(cfg: dict[str, Any]) -> None:
    sys.path.insert(0, str(ROOT))
    import logging

    import anyio
    import structlog

    from drivers.sim.ft_sensor import SimFTConfig, SimFTSensor
    from drivers.sim.robot import SimRobot, SimRobotConfig

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    if cfg["sched_priority"]:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(cfg["sched_priority"])))
    ctl = socket.socket(fileno=int(cfg["fd"]))
    ctl.setblocking(False)

    class Lane:
        def __init__(self) -> None:
            self.ft = SimFTSensor(SimFTConfig(port=0, rate_hz=1000))
            self.ft.contact.set(fz=BELOW_N)
            self.ft.on_send = self.on_send
            self.robot = SimRobot(SimRobotConfig(port=0), on_halt=self.on_halt)
            self.armed = False
            self.sent: float | None = None
            self.arrived: float | None = None
            self.done = anyio.Event()

        def on_send(self, seq: int, t_send: float, wrench: tuple[float, ...]) -> None:
            if self.armed and self.sent is None and math.hypot(*wrench[:3]) > LIMIT_N:
                self.sent = t_send

        def on_halt(self, t: float) -> None:
            if self.sent is not None and self.arrived is None:
                self.arrived = t
                self.done.set()

        async def cross(self) -> dict[str, Any]:
            self.sent = self.arrived = None
            self.done = anyio.Event()
            self.armed = True
            self.ft.contact.set(fz=ABOVE_N)
            with anyio.move_on_after(1.0):
                await self.done.wait()
            self.ft.contact.set(fz=BELOW_N)
            self.armed = False
            return {"sent": self.sent, "arrived": self.arrived}

    async def serve() -> None:
        lanes = {name: Lane() for name in cfg["lanes"]}
        async with anyio.create_task_group() as tg:
            ports = {}
            for name, lane in lanes.items():
                ports[name] = {"ft": await tg.start(lane.ft.serve), "robot": await tg.start(lane.robot.serve)}
            ctl.send(json.dumps({"ports": ports}).encode())
            while True:
                await anyio.wait_readable(ctl)
                data = ctl.recv(4096)
                if not data:
                    break
                msg = json.loads(data)
                reply = await lanes[msg["lane"]].cross()
                ctl.send(json.dumps(reply).encode())
            tg.cancel_scope.cancel()

    anyio.run(serve)


# --- the measurement ---------------------------------------------------------------------------------------------


def cpu_load(stop: threading.Event, warm: threading.Event, counter: list[int]) -> None:
    """Perception-like work: normals on a point cloud, FFT convolution, small numpy ops."""
    import numpy as np
    import open3d as o3d
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(0)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(rng.random((50_000, 3))))
    image = rng.random((480, 640))
    kernel = np.ones((40, 60))
    while not stop.is_set():
        pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=16))
        fftconvolve(image, kernel, mode="valid")
        for _ in range(200):  # GIL-holding small-array churn
            np.sort(rng.random(256))
        counter[0] += 1
        warm.set()  # imports and first allocations done: measuring starts now


def percentiles(values_s: list[float]) -> dict[str, float | int | None]:
    if not values_s:
        return {"p50_ms": None, "p99_ms": None, "p999_ms": None, "max_ms": None, "n": 0}
    import numpy as np

    ms = np.array(values_s) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "p999_ms": round(float(np.percentile(ms, 99.9)), 4),
        "max_ms": round(float(ms.max()), 4),
        "n": len(values_s),
    }


async def measure(trials: int, load: bool, inloop: bool, sched: str, rig_rt: bool, seed: int) -> dict[str, Any]:
    import subprocess

    import anyio

    sys.path.insert(0, str(ROOT))
    from cellctl.runtime.reflex import ForceGuard
    from cellctl.runtime.reflex_process import ReflexConfig, ReflexError, ReflexProcess
    from drivers.ft import FTConfig, FTSensor
    from drivers.robot import RobotConfig, RobotDriver

    rng = random.Random(seed)
    path = "inloop" if inloop else "process"
    prio = RT_PRIORITY if sched == "fifo" else 0
    nice = NICE if sched == "nice" else 0

    # the rig
    ctl, rig_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ctl.setblocking(False)
    rig_cfg = {"fd": rig_end.fileno(), "lanes": [path, "reference"], "sched_priority": RIG_PRIORITY if rig_rt else 0}
    rig = await anyio.open_process([sys.executable, __file__, "--rig", json.dumps(rig_cfg)],
                                   pass_fds=(rig_end.fileno(),), stdin=subprocess.DEVNULL, stdout=None, stderr=None)
    rig_end.close()

    async def rig_call(msg: dict[str, Any] | None) -> dict[str, Any]:
        if msg is not None:
            ctl.send(json.dumps(msg).encode())
        await anyio.wait_readable(ctl)
        return json.loads(ctl.recv(4096))

    ports = (await rig_call(None))["ports"]
    reference = None
    stop = threading.Event()
    warm = threading.Event()
    load_iterations = [0]
    samples: dict[str, list[float]] = {path: [], "reference": []}
    breakdown: dict[str, list[float]] = {"sensor_to_child_recv": [], "child_recv_to_halt_sent": [],
                                         "halt_sent_to_robot": []}
    misses = {path: 0, "reference": 0}
    arm_failures = 0
    reflex = None
    try:
        async with anyio.create_task_group() as tg:
            robot = RobotDriver(RobotConfig(port=ports[path]["robot"]))
            await tg.start(robot.run)
            guard = None
            if inloop:
                ft = FTSensor(FTConfig(port=ports[path]["ft"]))
                guard = ForceGuard(robot.halt)
                ft.samples.add_tap(guard.tap)
                await tg.start(guard.run)
            else:
                reflex = ReflexProcess(ReflexConfig(sensor_port=ports[path]["ft"], robot_port=ports[path]["robot"],
                                                    sched_priority=prio, nice=nice))
                await tg.start(reflex.run)
                with anyio.fail_after(10):
                    await reflex.wait_can_guard()
                ft = FTSensor(FTConfig(host=reflex.relay[0], port=reflex.relay[1]))
            await tg.start(ft.run)
            with anyio.fail_after(10):
                await robot.wait_ready()
            ref_cfg = {"sensor_host": "127.0.0.1", "sensor_port": ports["reference"]["ft"],
                       "robot_host": "127.0.0.1", "robot_port": ports["reference"]["robot"], "unit_id": 1,
                       "counts_per_force": 1_000_000, "limit_n": LIMIT_N, "sched_priority": prio,
                       "nice": nice}
            reference = await anyio.open_process(
                [sys.executable, "-I", "-S", __file__, "--reference-worker", json.dumps(ref_cfg)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None)
            assert reference.stdout is not None
            with anyio.fail_after(10):
                await reference.stdout.receive()  # "ready"
            if load:
                tg.start_soon(anyio.to_thread.run_sync, cpu_load, stop, warm, load_iterations)
                await anyio.to_thread.run_sync(warm.wait)
            await anyio.sleep(0.2)  # the reference's stream under way
            for _ in range(trials):
                lanes = [path, "reference"]
                rng.shuffle(lanes)
                for lane in lanes:
                    token = None
                    if lane == "reference":
                        pass  # always armed; re-arms itself below the limit
                    elif inloop:
                        await robot.clear_halt()
                        assert guard is not None
                        guard.arm(LIMIT_N)
                    else:
                        await robot.clear_halt()
                        assert reflex is not None
                        try:
                            token = await reflex.arm(LIMIT_N)
                        except ReflexError:
                            arm_failures += 1
                            await anyio.sleep(0.05)
                            continue
                    await anyio.sleep(rng.uniform(0.005, 0.030))
                    r = await rig_call({"lane": lane})
                    trip = None
                    if guard is not None and lane == path:
                        guard.disarm()
                    elif token is not None:
                        assert reflex is not None
                        trip = await reflex.disarm(token)
                    if r["sent"] is None or r["arrived"] is None:
                        misses[lane] += 1
                    else:
                        samples[lane].append(r["arrived"] - r["sent"])
                        if trip is not None and math.isfinite(trip.sent_at):
                            breakdown["sensor_to_child_recv"].append(trip.t_recv - r["sent"])
                            breakdown["child_recv_to_halt_sent"].append(trip.sent_at - trip.t_recv)
                            breakdown["halt_sent_to_robot"].append(r["arrived"] - trip.sent_at)
                    await anyio.sleep(0.005)
            stop.set()
            child_stats = reflex.stats() if reflex is not None else {}
            reflex_sched = reflex.sched if reflex is not None else "in this process"
            tg.cancel_scope.cancel()
    finally:
        stop.set()
        with anyio.CancelScope(shield=True):
            for proc in (reference, rig):
                if proc is not None and proc.returncode is None:
                    if proc is rig:
                        ctl.close()
                    else:
                        proc.terminate()
                    with anyio.move_on_after(3):
                        await proc.wait()
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()
    main = percentiles(samples[path])
    ref = percentiles(samples["reference"])
    if not main["n"] or not ref["n"]:
        raise SystemExit(f"no halt measured (misses {misses}, arm failures {arm_failures}): is the rig taking halts?")
    ratio = round(main["p99_ms"] / ref["p99_ms"], 3) if ref["p99_ms"] else None  # type: ignore[operator]
    result: dict[str, Any] = {
        "path": path,
        "trials": trials,
        "load": load,
        "measured": main["n"],
        "misses": misses[path],
        "arm_failures": arm_failures,
        "p50_ms": main["p50_ms"], "p99_ms": main["p99_ms"], "p999_ms": main["p999_ms"], "max_ms": main["max_ms"],
        "reference_p50_ms": ref["p50_ms"], "reference_p99_ms": ref["p99_ms"], "reference_p999_ms": ref["p999_ms"],
        "reference_max_ms": ref["max_ms"], "reference_measured": ref["n"], "reference_misses": misses["reference"],
        "ratio_p99_vs_reference": ratio,
        "aims_met": {
            "p99_le_2x_reference": ratio is not None and ratio <= 2.0,
            "p99_lt_2ms": main["p99_ms"] < 2.0,  # type: ignore[operator]
            "p999_lt_5ms": main["p999_ms"] < 5.0,  # type: ignore[operator]
        },
        "sched": sched,
        "rig_rt": rig_rt,
        "reflex_sched": reflex_sched,
        "load_iterations": load_iterations[0],
        "sensor_rate_hz": 1000,
        "ft_lost_packets": ft.stats.lost,
    }
    if not inloop:
        result["breakdown"] = {k: percentiles(v) for k, v in breakdown.items()}
        result["reflex_stats"] = {k: v for k, v in child_stats.items() if v}
    return result


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--reference-worker":
        reference_worker(json.loads(sys.argv[2]))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--rig":
        rig_main(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000, help="limit crossings per path (default 1000)")
    parser.add_argument("--no-load", action="store_true", help="measure without the CPU-heavy job")
    parser.add_argument("--inloop", action="store_true", help="measure the old in-loop ForceGuard instead")
    parser.add_argument("--sched", choices=("fifo", "nice", "normal"), default="fifo",
                        help=f"the reflex process and the reference: SCHED_FIFO {RT_PRIORITY} (default), "
                             f"nice {NICE}, or normal (each when permitted)")
    parser.add_argument("--no-rt", action="store_true", help="--sched normal, and the rig not SCHED_FIFO either")
    parser.add_argument("--seed", type=int, default=1, help="seed for the crossing moments")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--default-switch-interval", action="store_true",
        help="keep CPython's 5 ms GIL switch interval instead of the controller's setting",
    )
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials must be >= 1")
    sys.path.insert(0, str(ROOT))
    import logging

    import anyio
    import structlog

    from cellctl.runtime.reflex import tune_interpreter_for_reflex

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    if not args.default_switch_interval:
        tune_interpreter_for_reflex()
    started = time.perf_counter()
    sched = "normal" if args.no_rt else args.sched
    result = anyio.run(measure, args.trials, not args.no_load, args.inloop, sched, not args.no_rt, args.seed)
    result["switch_interval_ms"] = sys.getswitchinterval() * 1e3
    result["cpus"] = os.cpu_count()
    result["wall_s"] = round(time.perf_counter() - started, 2)
    if args.json:
        print(json.dumps(result))
        return
    name = {"process": "reflex process", "inloop": "in-loop guard"}[result["path"]]
    print(f"force reflex, F/T at 1 kHz over UDP, halt over Modbus TCP; {result['cpus']} CPUs; "
          f"load in the main process: {'yes' if result['load'] else 'no'} ({result['load_iterations']} rounds); "
          f"reflex and reference {result['sched']} (reflex: {result['reflex_sched']}), "
          f"rig {'SCHED_FIFO' if result['rig_rt'] else 'normal'}")
    print(f"{'path':<18}{'p50':>9}{'p99':>9}{'p99.9':>9}{'max':>9}{'trials':>9}   (ms, crossing sent -> HALT at robot)")
    for label, prefix, n in ((name, "", result["measured"]), ("bare reference", "reference_",
                                                                result["reference_measured"])):
        print(f"{label:<18}" + "".join(f"{result[prefix + k]:>9.3f}" for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms"))
              + f"{n:>9}")
    print(f"p99 ratio to the reference: {result['ratio_p99_vs_reference']}")
    for label, part in result.get("breakdown", {}).items():
        if part["n"]:
            print(f"  {label:<26} p50 {part['p50_ms']:.3f}  p99 {part['p99_ms']:.3f}  max {part['max_ms']:.3f}")
    if result["misses"] or result["reference_misses"] or result["arm_failures"]:
        print(f"MISSED: {result['misses']} ({name}), {result['reference_misses']} (reference) trials saw no halt "
              f"within 1 s; arm failures: {result['arm_failures']}")


if __name__ == "__main__":
    main()
