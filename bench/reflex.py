"""Benchmark: the force reflex, from a crossing F/T packet to the halt at the robot.

The simulated F/T sensor streams at 1 kHz over UDP; at a random moment its force
crosses the guard's limit; the guard (a tap on the driver's sample topic) sends the
halt on the robot driver's dedicated Modbus link. Latency runs from the send time of
the first crossing packet to the arrival of the halt write at the simulated robot,
both `perf_counter` in this process. A CPU-heavy numpy/open3d job runs meanwhile in
a worker thread of the same process, as perception does in the controller.

Usage: python bench/reflex.py [--trials N] [--no-load] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from cellctl.reflex import ForceGuard, tune_interpreter_for_reflex
from drivers.ft import FTConfig, FTSensor
from drivers.robot import RobotConfig, RobotDriver
from drivers.sim.ft_sensor import SimFTConfig, SimFTSensor
from drivers.sim.robot import SimRobot, SimRobotConfig

LIMIT_N = 20.0
BELOW_N = 5.0
ABOVE_N = 30.0


@dataclass
class Trial:
    crossing_sent: float | None = None
    halt_arrived: float | None = None
    done: anyio.Event = field(default_factory=anyio.Event)


def cpu_load(stop: threading.Event, warm: threading.Event, counter: list[int]) -> None:
    """Perception-like work: normals on a point cloud, FFT convolution, small numpy ops."""
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


async def run(trials: int, load: bool, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    trial = Trial()

    def on_send(seq: int, t_send: float, wrench: tuple[float, ...]) -> None:
        if trial.crossing_sent is None and math.hypot(*wrench[:3]) > LIMIT_N:
            trial.crossing_sent = t_send

    def on_halt(t_arrival: float) -> None:
        if trial.halt_arrived is None:
            trial.halt_arrived = t_arrival
            trial.done.set()

    sim_ft = SimFTSensor(SimFTConfig(port=0, rate_hz=1000))
    sim_ft.on_send = on_send
    sim_robot = SimRobot(SimRobotConfig(port=0), on_halt=on_halt)
    latencies: list[float] = []
    misses = 0
    stop = threading.Event()
    warm = threading.Event()
    load_iterations = [0]
    async with anyio.create_task_group() as tg:
        ft_port = await tg.start(sim_ft.serve)
        robot_port = await tg.start(sim_robot.serve)
        ft = FTSensor(FTConfig(port=ft_port))
        robot = RobotDriver(RobotConfig(port=robot_port))
        guard = ForceGuard(robot.halt)
        ft.samples.add_tap(guard.tap)
        await tg.start(ft.run)
        await tg.start(robot.run)
        await tg.start(guard.run)
        with anyio.fail_after(10):
            await robot.wait_ready()
        if load:
            tg.start_soon(anyio.to_thread.run_sync, cpu_load, stop, warm, load_iterations)
            await anyio.to_thread.run_sync(warm.wait)
        sim_ft.contact.set(fz=BELOW_N)
        for _ in range(trials):
            trial = Trial()
            await robot.clear_halt()
            guard.arm(LIMIT_N)
            await anyio.sleep(rng.uniform(0.005, 0.030))
            sim_ft.contact.set(fz=ABOVE_N)
            with anyio.move_on_after(1.0):
                await trial.done.wait()
            sim_ft.contact.set(fz=BELOW_N)
            guard.disarm()
            if trial.crossing_sent is None or trial.halt_arrived is None:
                misses += 1
            else:
                latencies.append(trial.halt_arrived - trial.crossing_sent)
            await anyio.sleep(0.005)
        stop.set()
        tg.cancel_scope.cancel()
    if not latencies:
        raise SystemExit(f"no trial measured a halt ({misses} misses): is the robot simulator taking halts?")
    ms = np.array(latencies) * 1e3
    return {
        "trials": trials,
        "measured": len(latencies),
        "misses": misses,
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "p999_ms": round(float(np.percentile(ms, 99.9)), 4),
        "max_ms": round(float(ms.max()), 4),
        "cpu_load": load,
        "load_iterations": load_iterations[0],
        "sensor_rate_hz": 1000,
        "ft_lost_packets": ft.stats.lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000, help="limit crossings to measure (default 1000)")
    parser.add_argument("--no-load", action="store_true", help="measure without the CPU-heavy job")
    parser.add_argument("--seed", type=int, default=1, help="seed for the crossing moments")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--default-switch-interval", action="store_true",
        help="keep CPython's 5 ms GIL switch interval instead of the controller's setting",
    )
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials must be >= 1")
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    if not args.default_switch_interval:
        tune_interpreter_for_reflex()
    started = time.perf_counter()
    result = anyio.run(run, args.trials, not args.no_load, args.seed)
    result["switch_interval_ms"] = sys.getswitchinterval() * 1e3
    result["wall_s"] = round(time.perf_counter() - started, 2)
    if args.json:
        print(json.dumps(result))
        return
    print(f"force reflex: {result['measured']}/{result['trials']} trials, F/T at 1 kHz over UDP, halt over Modbus TCP")
    print(f"CPU load in a worker thread: {'yes' if result['cpu_load'] else 'no'} ({result['load_iterations']} rounds), "
          f"GIL switch interval {result['switch_interval_ms']:g} ms")
    print(f"{'p50':>10}{'p99':>10}{'p99.9':>10}{'max':>10}   (ms, crossing packet sent -> halt at robot)")
    print(f"{result['p50_ms']:>10.3f}{result['p99_ms']:>10.3f}{result['p999_ms']:>10.3f}{result['max_ms']:>10.3f}")
    if result["misses"]:
        print(f"MISSED: {result['misses']} trials saw no halt within 1 s")


if __name__ == "__main__":
    main()
