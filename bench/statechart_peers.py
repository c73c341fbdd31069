"""The cellctl benchmark chart in three third-party statechart libraries.

Chart (identical everywhere)::

    cell (root), initial idle
      idle --start--> running
      running [parallel] --stop--> idle
        arm:  approach --touch--> contact --lift--> retract --go--> approach
        band: closed --open_band--> open --close_band--> closed

Every state except the root has an entry action counting its entries.
Events: one ``start``, then cycling touch, open_band, lift, close_band, go, stop, start.
"""

from __future__ import annotations

import gc
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import cycle, islice
from time import perf_counter
from typing import Any

STATES: tuple[str, ...] = (
    "idle",
    "running",
    "arm",
    "approach",
    "contact",
    "retract",
    "band",
    "closed",
    "open",
)
CYCLE: tuple[str, ...] = (
    "touch",
    "open_band",
    "lift",
    "close_band",
    "go",
    "stop",
    "start",
)
# The state whose entry action stamps the latency sample for each event.
TARGET: dict[str, str] = {
    "start": "running",
    "stop": "idle",
    "touch": "contact",
    "lift": "retract",
    "go": "approach",
    "open_band": "open",
    "close_band": "closed",
}
# Region-local transitions: event -> (region, source, target).
_REGION_MOVES: dict[str, tuple[str, str, str]] = {
    "touch": ("arm", "approach", "contact"),
    "lift": ("arm", "contact", "retract"),
    "go": ("arm", "retract", "approach"),
    "open_band": ("band", "closed", "open"),
    "close_band": ("band", "open", "closed"),
}
_INSTALL_HINT = "install the bench extra: pip install -e '.[bench]'"


@dataclass
class PeerResult:
    name: str  # "sismic", "transitions", "python-statemachine"
    version: str  # library version
    events: int  # events sent in the throughput phase
    seconds: float  # wall time (perf_counter) of the throughput phase
    latencies_s: list[float]  # send -> target state's entry action, per sample
    entry_counts: dict[str, int]
    final_configuration: frozenset[str]  # plain state names, root excluded


# --- reference simulation ---------------------------------------------------


def event_sequence(n_events: int) -> list[str]:
    """The first ``n_events`` events: ``start`` then the 7-event cycle."""
    if n_events <= 0:
        return []
    return ["start", *islice(cycle(CYCLE), n_events - 1)]


def _simulate(n_events: int) -> tuple[dict[str, int], frozenset[str]]:
    counts = dict.fromkeys(STATES, 0)
    counts["idle"] = 1  # initial entry
    active: dict[str, str] | None = None  # region -> active leaf, None when idle
    for event in event_sequence(n_events):
        if event == "start" and active is None:
            active = {"arm": "approach", "band": "closed"}
            for state in ("running", "arm", "approach", "band", "closed"):
                counts[state] += 1
        elif event == "stop" and active is not None:
            active = None
            counts["idle"] += 1
        elif event in _REGION_MOVES and active is not None:
            region, source, target = _REGION_MOVES[event]
            if active[region] == source:
                active[region] = target
                counts[target] += 1
    if active is None:
        return counts, frozenset({"idle"})
    return counts, frozenset({"running", *active, *active.values()})


def expected_counts(n_events: int) -> dict[str, int]:
    """Entry counts after initialisation plus ``n_events`` events."""
    return _simulate(n_events)[0]


def expected_final(n_events: int) -> frozenset[str]:
    """Active states after initialisation plus ``n_events`` events."""
    return _simulate(n_events)[1]


# --- shared measurement harness ---------------------------------------------


@dataclass
class _Recorder:
    """Entry-action sink: counts entries and stamps the latency probe."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    target: str | None = None  # state whose entry stamps `stamp`; None = no probe
    stamp: float = 0.0

    def enter(self, name: str) -> None:
        self.counts[name] += 1
        if name == self.target:
            self.stamp = perf_counter()


# A built machine: (send(event_name), current configuration as plain names).
_Machine = tuple[Callable[[str], Any], Callable[[], frozenset[str]]]


def _check(
    lib: str, phase: str, rec: _Recorder, config: frozenset[str], n: int
) -> None:
    want_counts, want_final = _simulate(n)
    if rec.counts != want_counts:
        raise AssertionError(
            f"{lib} ({phase}, {n} events): entry counts {rec.counts} "
            f"!= expected {want_counts}"
        )
    if config != want_final:
        raise AssertionError(
            f"{lib} ({phase}, {n} events): final configuration {sorted(config)} "
            f"!= expected {sorted(want_final)}"
        )


def _measure(
    lib: str,
    version: str,
    build: Callable[[_Recorder], _Machine],
    n_events: int,
    latency_samples: int,
) -> PeerResult:
    # Throughput: fresh machine, no probe, only the send loop is timed.
    rec = _Recorder()
    send, configuration = build(rec)
    events = event_sequence(n_events)
    gc.collect()
    t0 = perf_counter()
    for event in events:
        send(event)
    seconds = perf_counter() - t0
    counts = dict(rec.counts)
    final = configuration()
    _check(lib, "throughput", rec, final, n_events)

    # Latency: another fresh machine, one probed event at a time.
    lrec = _Recorder()
    lsend, lconfiguration = build(lrec)
    latencies: list[float] = []
    gc.collect()
    for event in event_sequence(latency_samples):
        lrec.target = TARGET[event]
        lrec.stamp = 0.0
        t0 = perf_counter()
        lsend(event)
        if lrec.stamp < t0:
            raise AssertionError(
                f"{lib}: entry action of {lrec.target!r} not run for {event!r}"
            )
        latencies.append(lrec.stamp - t0)
    lrec.target = None
    _check(lib, "latency", lrec, lconfiguration(), latency_samples)

    return PeerResult(
        name=lib,
        version=version,
        events=n_events,
        seconds=seconds,
        latencies_s=latencies,
        entry_counts=counts,
        final_configuration=final,
    )


def _missing(lib: str, exc: ImportError) -> ImportError:
    err = ImportError(f"{lib} is not installed; {_INSTALL_HINT}")
    err.__cause__ = exc
    return err


# --- sismic -----------------------------------------------------------------

_SISMIC_YAML = """
statechart:
  name: cell
  root state:
    name: cell
    initial: idle
    states:
      - name: idle
        on entry: enter('idle')
        transitions:
          - {event: start, target: running}
      - name: running
        on entry: enter('running')
        transitions:
          - {event: stop, target: idle}
        parallel states:
          - name: arm
            on entry: enter('arm')
            initial: approach
            states:
              - name: approach
                on entry: enter('approach')
                transitions:
                  - {event: touch, target: contact}
              - name: contact
                on entry: enter('contact')
                transitions:
                  - {event: lift, target: retract}
              - name: retract
                on entry: enter('retract')
                transitions:
                  - {event: go, target: approach}
          - name: band
            on entry: enter('band')
            initial: closed
            states:
              - name: closed
                on entry: enter('closed')
                transitions:
                  - {event: open_band, target: open}
              - name: open
                on entry: enter('open')
                transitions:
                  - {event: close_band, target: closed}
"""


def run_sismic(n_events: int, latency_samples: int) -> PeerResult:
    try:
        from sismic.interpreter import Interpreter
        from sismic.io import import_from_yaml
    except ImportError as exc:
        raise _missing("sismic", exc) from exc

    def build(rec: _Recorder) -> _Machine:
        chart = import_from_yaml(text=_SISMIC_YAML)
        interp = Interpreter(chart, initial_context={"enter": rec.enter})
        interp.execute_once()  # initial step: enters cell, idle

        def send(event: str) -> None:
            interp.queue(event)
            interp.execute_once()

        def configuration() -> frozenset[str]:
            return frozenset(interp.configuration) - {"cell"}

        return send, configuration

    version = importlib.metadata.version("sismic")
    return _measure("sismic", version, build, n_events, latency_samples)


# --- transitions ------------------------------------------------------------


def _flatten(state: Any) -> frozenset[str]:
    """transitions' model.state ('idle' or ['running_arm_x', ...]) -> plain names."""
    if isinstance(state, str):
        return frozenset(state.split("_"))  # no state name here contains '_'
    return frozenset().union(*(_flatten(s) for s in state))


def run_transitions(n_events: int, latency_samples: int) -> PeerResult:
    try:
        from transitions.extensions import HierarchicalMachine
    except ImportError as exc:
        raise _missing("transitions", exc) from exc

    def build(rec: _Recorder) -> _Machine:
        def st(name: str, **kwargs: Any) -> dict[str, Any]:
            return {"name": name, "on_enter": partial(rec.enter, name), **kwargs}

        states = [
            st("idle"),
            st(
                "running",
                parallel=[
                    st(
                        "arm",
                        children=[st("approach"), st("contact"), st("retract")],
                        initial="approach",
                    ),
                    st("band", children=[st("closed"), st("open")], initial="closed"),
                ],
            ),
        ]
        # Nested states are addressed as parent_child (separator '_').
        transitions = [
            ["start", "idle", "running"],
            ["stop", "running", "idle"],
            ["touch", "running_arm_approach", "running_arm_contact"],
            ["lift", "running_arm_contact", "running_arm_retract"],
            ["go", "running_arm_retract", "running_arm_approach"],
            ["open_band", "running_band_closed", "running_band_open"],
            ["close_band", "running_band_open", "running_band_closed"],
        ]

        class Model:
            pass

        model = Model()
        HierarchicalMachine(
            model=model,
            states=states,
            transitions=transitions,
            initial="idle",
            queued=True,
            auto_transitions=False,
        )
        # transitions does not run on_enter for the initial state; do it here
        # so the counts line up with the other libraries (setup, not timed).
        rec.enter("idle")

        def configuration() -> frozenset[str]:
            return _flatten(model.state)  # type: ignore[attr-defined]

        return model.trigger, configuration  # type: ignore[attr-defined]

    version = importlib.metadata.version("transitions")
    return _measure("transitions", version, build, n_events, latency_samples)


# --- python-statemachine ----------------------------------------------------


def run_python_statemachine(n_events: int, latency_samples: int) -> PeerResult:
    try:
        from statemachine import State, StateChart
    except ImportError as exc:
        raise _missing("python-statemachine", exc) from exc

    def build(rec: _Recorder) -> _Machine:
        def on(name: str) -> Callable[[], None]:
            return partial(rec.enter, name)

        # Class is built per run so entry callbacks bind this run's recorder.
        class Cell(StateChart):
            idle = State(initial=True, enter=on("idle"))

            class running(State.Parallel, enter=on("running")):
                class arm(State.Compound, enter=on("arm")):
                    approach = State(initial=True, enter=on("approach"))
                    contact = State(enter=on("contact"))
                    retract = State(enter=on("retract"))
                    touch = approach.to(contact)
                    lift = contact.to(retract)
                    go = retract.to(approach)

                class band(State.Compound, enter=on("band")):
                    closed = State(initial=True, enter=on("closed"))
                    open = State(enter=on("open"))
                    open_band = closed.to(open)
                    close_band = open.to(closed)

            start = idle.to(running)
            stop = running.to(idle)

        sm = Cell()  # enters idle

        def configuration() -> frozenset[str]:
            return frozenset(s.id for s in sm.configuration)

        return sm.send, configuration

    version = importlib.metadata.version("python-statemachine")
    return _measure("python-statemachine", version, build, n_events, latency_samples)


PEERS: dict[str, Callable[[int, int], PeerResult]] = {
    "sismic": run_sismic,
    "transitions": run_transitions,
    "python-statemachine": run_python_statemachine,
}


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


if __name__ == "__main__":
    for peer, run in PEERS.items():
        try:
            res = run(7001, 2000)
        except ImportError as exc:
            print(f"{peer:20s} skipped: {exc}")
            continue
        print(
            f"{res.name:20s} {res.version:8s} "
            f"{res.events / res.seconds:10.0f} events/s  "
            f"p50 {_percentile(res.latencies_s, 0.50) * 1e3:.4f} ms  "
            f"p99 {_percentile(res.latencies_s, 0.99) * 1e3:.4f} ms"
        )
