"""Standard tools accept the chart exports (statecharts/engine/export.py).

- mermaid-cli (`mmdc`, npm, on Debian's chromium) renders the Mermaid of every shipped chart and
  of the structural charts below, in one run (one browser start).
- SCION (`@scion-scxml/scxml`, npm), an independent SCXML interpreter, runs the exported SCXML on
  virtual time (tests/interop/scion/drive.cjs) through the same configurations as our
  `Interpreter` for the same events and timer deadlines, with the same actions in the same order.
  The structural charts (compound, parallel, shallow and deep history, eventless, internal
  transitions, timers and sends, deep and multiple initials, a root of its own) and the shipped
  `stow_demo` and `cell` charts have only `In()` guards or none. `stow` and `pick` have Python
  guards, which SCXML cannot evaluate: the export declares them closed (false), and they run
  with our side's Python guards closed too.

Actions are opaque to SCION (each is a `<log>` of its name), so our side runs the same compiled
chart with each Python action replaced by a recorder of its name and done data dropped;
`send`/`cancel` actions keep their meaning on both sides. Activities run on neither side: the
events they would post come in the event sequence. `make test` installs both tools
(scripts/ensure-sysdeps.sh --test, tests/interop/{scion,mermaid}/package.json); outside CI a
missing tool skips these tests, in CI (CI set) it fails them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from statecharts import catalog
from statecharts.engine import (
    ActionContext,
    Activity,
    ActivityContext,
    Cancel,
    Chart,
    Event,
    Final,
    History,
    Interpreter,
    Node,
    Parallel,
    Send,
    State,
    TraceRecord,
    after,
    always,
    cancel,
    on,
    send,
)
from statecharts.engine.events import TIMER_PREFIX
from statecharts.engine.export import SCXML_NS, to_mermaid, to_scxml
from statecharts.engine.guards import In
from statecharts.engine.model import callable_name
from tests.statecharts.helpers import FakeHost

HERE = Path(__file__).parent
SCION_DIR = HERE / "scion"
MERMAID_DIR = HERE / "mermaid"
MMDC = MERMAID_DIR / "node_modules" / ".bin" / "mmdc"


def require(tool: str, ready: bool) -> None:
    if not ready:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing: `make test` installs it")
        pytest.skip(f"{tool} not installed (`make test` installs it)")


# -- the structural charts (only In() guards; actions are named no-ops) ---------------------------


def act(name: str) -> Callable[[ActionContext, Event], None]:
    def fn(ctx: ActionContext, event: Event) -> None:
        pass

    fn.__name__ = name
    return fn


def compound() -> Chart:
    return Chart(
        "compound",
        State(
            "top",
            State(
                "s1",
                State(
                    "s11",
                    State("s111", on_entry=act("in_s111"), on_exit=act("out_s111"), transitions=[on("b", "s112")]),
                    State("s112", transitions=[on("b", "s111", action=act("t_b_back"))]),
                    initial="s111",
                    on_entry=act("in_s11"),
                    transitions=[on("c", "s2", action=act("t_c")), on("a.b", "s12")],
                ),
                State("s12", transitions=[on("a", "s11", action=act("t_a_inner"))], on_exit=act("out_s12")),
                initial="s11",
                on_entry=act("in_s1"),
                on_exit=act("out_s1"),
                transitions=[
                    on("a", "s12", action=act("t_a_outer")),
                    on("d", action=[act("t_d_targetless"), act("t_d_second")]),
                    on("e", "s1", action=act("t_e_self")),
                ],
            ),
            State("s2", transitions=[on("x", "s1"), on("x", "s3"), on("*", "s3", action=act("t_any"))]),
            State(
                "s3",
                State("s31", transitions=[on("f", "s3_end")]),
                Final("s3_end", on_entry=act("in_s3_end")),
                initial="s31",
                transitions=[on("done.state.s3", "s1", action=act("t_s3_done"))],
            ),
            initial="s1",
        ),
    )


def parallel() -> Chart:
    return Chart(
        "parallel",
        State(
            "top",
            Parallel(
                "p",
                State(
                    "r1",
                    State("a1", transitions=[on("go", "a2"), on("x", "out", action=act("t_x_a1"))]),
                    State("a2", transitions=[on("fin", "a_end")]),
                    Final("a_end"),
                    initial="a1",
                ),
                State(
                    "r2",
                    State("b1", transitions=[always("b2", guard=In("a2")), on("x", "b2", action=act("t_x_b1"))]),
                    State("b2", transitions=[on("fin", "b_end"), on("go", "b1")]),
                    Final("b_end"),
                    initial="b1",
                    on_entry=act("in_r2"),
                    on_exit=act("out_r2"),
                ),
                Parallel(
                    "r3",
                    State("c", State("c1", transitions=[on("go", "c2")]), State("c2"), initial="c1"),
                    State("d", State("d1", transitions=[on("fin", "d_end")]), Final("d_end"), initial="d1"),
                ),
                on_entry=act("in_p"),
                on_exit=act("out_p"),
                transitions=[
                    on("done.state.r1", action=act("t_r1_done")),
                    on("done.state.p", "out", action=act("t_p_done")),
                    on("abort", "out"),
                ],
            ),
            State("out", transitions=[on("again", "p"), on("deep", ("a2", "c2"))]),
            initial="p",
        ),
    )


def history() -> Chart:
    return Chart(
        "history",
        State(
            "top",
            State(
                "work",
                History("h", action=act("h_default")),
                History("hd", "w2", deep=True),
                State(
                    "w1",
                    State("w11", transitions=[on("n", "w12")]),
                    State("w12", on_entry=act("in_w12")),
                    initial="w11",
                    transitions=[on("next", "w2")],
                ),
                State(
                    "w2",
                    Parallel(
                        "wp",
                        State("x", State("x1", transitions=[on("n", "x2")]), State("x2"), initial="x1"),
                        State("y", State("y1", transitions=[on("m", "y2")]), State("y2"), initial="y1"),
                    ),
                    initial="wp",
                    transitions=[on("back", "w1")],
                ),
                initial="w1",
                transitions=[on("pause", "paused")],
            ),
            State("paused", transitions=[on("shallow", "h"), on("deep", "hd")]),
            initial="work",
        ),
    )


def eventless() -> Chart:
    return Chart(
        "eventless",
        State(
            "top",
            State("e1", transitions=[on("go", "e2")]),
            State("e2", transitions=[always("e3", action=act("t_e2_e3"))]),
            State(
                "e3",
                State("e31", transitions=[always("e32", guard=In("e3"))]),
                State("e32", transitions=[on("go", "e3_end")]),
                Final("e3_end"),
                initial="e31",
                transitions=[always("e4", guard=In("e4_never")), on("done.state.e3", "e4")],
            ),
            Parallel(
                "e4",
                State("u", State("u1", transitions=[on("go", "u2")]), State("u2"), initial="u1"),
                State("v", State("v1", transitions=[always("v2", guard=In("u2"))]), State("v2"), initial="v1"),
                transitions=[always("e1", guard=In("v2"), action=act("t_back_to_e1"))],
            ),
            State("e4_never"),
            initial="e1",
        ),
    )


def internal() -> Chart:
    return Chart(
        "internal",
        State(
            "top",
            State(
                "outer",
                State("i1", on_entry=act("in_i1"), on_exit=act("out_i1")),
                State("i2", on_entry=act("in_i2"), on_exit=act("out_i2"), transitions=[on("up", "outer")]),
                initial="i1",
                on_entry=act("in_outer"),
                on_exit=act("out_outer"),
                transitions=[
                    on("int", "i2", internal=True, action=act("t_int")),
                    on("ext", "i2", action=act("t_ext")),
                    on("to_par", "pq"),
                ],
            ),
            Parallel(
                "par",
                State("pa", State("pp"), State("pq"), initial="pp"),
                State("pb", State("pr"), initial="pr", on_entry=act("in_pb"), on_exit=act("out_pb")),
                transitions=[on("int", "pp", internal=True, action=act("t_par_int")), on("leave", "outer")],
            ),
            initial="outer",
        ),
    )


def timers() -> Chart:
    return Chart(
        "timers",
        State(
            "top",
            State(
                "t1",
                on_entry=send("ping", delay=0.25, id="ping"),
                transitions=[after(1, "t2"), on("skip", "t3"), on("ping", action=act("got_ping"))],
            ),
            State(
                "t2",
                State("t21", transitions=[after(0.5, "t22")]),
                State("t22", transitions=[after(0.5, "t21"), after(0.75, "t3")]),
                initial="t21",
                transitions=[after(3, "t1"), on("hush", action=cancel("late")), on("skip", "t1")],
                on_entry=send("late", delay=2.125, id="late"),
            ),
            State("t3", transitions=[on("late", "t1"), after(10, "t1"), on("back", "t2")]),
            initial="t1",
        ),
    )


def initials() -> Chart:
    return Chart(
        "initials",
        State(
            "top",
            State(
                "b",
                State("b1", State("b11"), State("b12"), initial="b11"),
                State("b2"),
                initial="b12",
                transitions=[on("go", "q")],
            ),
            State(
                "q",
                Parallel(
                    "p",
                    State("r1", State("r11"), State("r12"), initial="r11"),
                    State("r2", State("r21"), State("r22"), initial="r21"),
                    State("r3", State("r31"), initial="r31"),
                ),
                initial=("r12", "r22"),
                transitions=[on("go", "b"), on("p", "p")],
            ),
            initial="b",
        ),
    )


def own_root() -> Chart:
    """The root has actions and transitions of its own, and a final child that ends the chart."""
    return Chart(
        "own_root",
        State(
            "main",
            State("m1", transitions=[on("go", "m2")]),
            State("m2", transitions=[on("end", "done"), on("go", "m1")]),
            Final("done", on_entry=act("in_done")),
            initial="m1",
            on_entry=act("in_main"),
            on_exit=act("out_main"),
            transitions=[on("reset", "m1", action=act("t_reset"))],
        ),
    )


def parallel_root() -> Chart:
    return Chart(
        "parallel_root",
        Parallel(
            "both",
            State(
                "l", State("l1", transitions=[on("a", "l2")]), State("l2", transitions=[on("a", "l1")]), initial="l1"
            ),
            State("k", State("k1", transitions=[always("k2", guard=In("l2"))]), State("k2"), initial="k1"),
            transitions=[on("b", "k1")],
        ),
    )


def kitchen_sink() -> Chart:
    """One chart with every construct the exports write, ids Mermaid reserves (drawn under an
    alias) and text it would parse: rendered by mmdc, run by SCION with its Python guard closed."""

    def ready(ctx: ActionContext, event: Event) -> bool:
        return True

    return Chart(
        "kitchen_sink",
        State(
            "root",
            State(
                "state",
                State("note", doc='a doc; with "quotes", #hash, <angle> {braces} --> and: colons'),
                State("style", transitions=[on("x", guard=ready, action=act("noop")), on("y", "constructor")]),
                State("constructor", transitions=[after(0.5, "note")]),
                initial="note",
                doc="a composite's doc; spanning\nlines",
                on_entry=act("in_state"),
                transitions=[
                    on("x", "class", action=send("y", {"n": 1}, delay=1e-7, id="q")),
                    on("z", action=cancel("q")),
                    on("w", "note", internal=True, action=act("t_w")),
                ],
            ),
            State(
                "class",
                History("default", deep=True, action=act("h_default")),
                Parallel(
                    "click",
                    State("p1", State("p11"), State("p12", transitions=[on("m", "p11")]), initial="p11"),
                    State(
                        "p2", State("p21", transitions=[always("p22", guard=In("p12"))]), State("p22"), initial="p21"
                    ),
                    transitions=[on("m", "p12")],
                ),
                State("toString", transitions=[on("back", "default")]),
                initial=("p12", "p21"),
                on_exit=act("bye"),
                activities=act_posting("watch", "m", "back"),
                transitions=[on("t", "toString"), on("done.state.click", "end")],
            ),
            Final("end", donedata=lambda ctx: 1),
            initial="state",
            on_entry=act("hello"),
            transitions=[on("stop", "end"), after(1e6, "end"), on("again", action=send("again.later", delay=2))],
        ),
        description="reserved words; and text: Mermaid would parse",
    )


def act_posting(name: str, *posts: str) -> Activity:
    async def fn(ctx: ActivityContext) -> None:
        pass

    return Activity(fn, posts, name)


STRUCTURAL: dict[str, Callable[[], Chart]] = {
    f.__name__: f
    for f in (compound, parallel, history, eventless, internal, timers, initials, own_root, parallel_root, kitchen_sink)
}

# Scripted paths through each structural chart (a random walk follows them).
SCRIPTS: dict[str, list[str | float]] = {
    "compound": ["b", "b", "d", "a.b.c", "a", "a", "e", "c", "x", "f", "c", "zz", "f"],
    "parallel": ["go", "fin", "go", "fin", "again", "x", "again", "abort", "deep", "fin", "fin"],
    "history": ["n", "pause", "shallow", "next", "n", "m", "pause", "deep", "pause", "shallow", "back", "pause",
                "deep"],
    "eventless": ["go", "go", "go", "go"],
    "internal": ["int", "ext", "up", "int", "to_par", "int", "leave"],
    "timers": [0.25, 0.5, 0.25, 0.5, 0.5, 0.5, "hush", 3.0, "skip", 1.0, 0.5, 0.75, 10.0, "back", 5.0],
    "initials": ["go", "p", "go", "go"],
    "own_root": ["go", "reset", "go", "end", "go"],
    "parallel_root": ["a", "b", "a", "a", "b"],
    "kitchen_sink": ["y", 0.5, "x", 0.0, "t", "back", "m", "stop"],
}


# -- our side: the same compiled chart, actions recorded by name, on virtual time ------------------


def opaque(chart: Chart, log: list[str], *, close_python_guards: bool) -> None:
    """`chart` with each Python action replaced by a recorder of its name (what SCION's <log>
    shows), done data dropped, and Python guards closed (as the export declares them)."""

    def recorder(fn: Any) -> Any:
        if isinstance(fn, (Send, Cancel)):
            return fn
        name = callable_name(fn)

        def record(ctx: ActionContext, event: Event) -> None:
            log.append(name)

        return record

    def closed(guard: Any) -> Any:
        if guard is None or isinstance(guard, In):
            return guard
        assert close_python_guards, f"{chart.name}: Python guard {callable_name(guard)}"

        def never(ctx: ActionContext, event: Event) -> bool:
            return False

        return never

    for node in chart.states:
        node.on_entry = tuple(map(recorder, node.on_entry))
        node.on_exit = tuple(map(recorder, node.on_exit))
        node.donedata = None
        if node.history_default is not None:
            node.history_default.actions = tuple(map(recorder, node.history_default.actions))
    for edge in chart.transitions:
        edge.actions = tuple(map(recorder, edge.actions))
        edge.guard = closed(edge.guard)


@dataclass(order=True)
class _Pending:
    due: int  # ms, as SCION's virtual clock in drive.cjs
    seq: int
    event: Event = field(compare=False)
    owner: int | None = field(compare=False, default=None)  # an after() timer's state
    send_id: str | None = field(compare=False, default=None)


class VirtualHost(FakeHost):
    """after() timers armed when a state settles and dropped when it exits, ctx.send with and
    without delay, on a millisecond clock; the same delivery rules as drive.cjs."""

    def __init__(self) -> None:
        super().__init__()
        self.ms = 0
        self.seq = 0
        self.pending: list[_Pending] = []

    def _push(self, event: Event, delay: float, owner: int | None = None, send_id: str | None = None) -> None:
        self.pending.append(_Pending(self.ms + round(delay * 1000), self.seq, event, owner, send_id))
        self.seq += 1

    def schedule(self, event: Event, delay: float, send_id: str | None) -> None:
        self._push(event, delay, send_id=send_id)

    def cancel(self, send_id: str) -> None:
        self.pending = [p for p in self.pending if p.send_id != send_id]

    def state_started(self, node: Node, generation: int) -> None:
        for delay, name in node.timers:
            self._push(Event(name, generation), delay, owner=node.index)

    def state_stopped(self, node: Node) -> None:
        self.pending = [p for p in self.pending if p.owner != node.index]


def run_ours(chart: Chart, steps: list[str | float], *, close_python_guards: bool) -> list[dict[str, Any]]:
    """Our records for `steps`, in drive.cjs's form."""
    log: list[str] = []
    errors: list[str] = []
    host = VirtualHost()
    opaque(chart, log, close_python_guards=close_python_guards)

    def trace(rec: TraceRecord) -> None:
        if rec.kind == "error":
            errors.append(f"{rec.state}: {rec.detail}")

    interp = Interpreter(chart, host, None, trace)

    def drain() -> None:
        while host.external:
            interp.process(host.external.pop(0))

    def record(fired: list[str]) -> dict[str, Any]:
        out = {
            "config": sorted(interp.configuration), "actions": log[:], "fired": fired, "errors": errors[:],
            "final": not interp.running,
        }  # fmt: skip
        log.clear()
        errors.clear()
        return out

    interp.start()
    drain()
    records = [record([])]
    for step in steps:
        fired: list[str] = []
        if isinstance(step, str):
            interp.process(Event(step))
            drain()
        else:
            until = host.ms + round(step * 1000)
            while interp.running:
                due = sorted(p for p in host.pending if p.due <= until)
                if not due:
                    break
                host.pending.remove(due[0])
                host.ms = due[0].due
                fired.append(due[0].event.name)
                interp.process(due[0].event)
                drain()
            host.ms = until
        records.append(record(fired))
    return records


# -- event sequences ---------------------------------------------------------------------------------


def alphabet(chart: Chart) -> list[str]:
    """Events the chart reacts to (descriptors as names, activity posts), plus one it ignores."""
    names = {"unheard.event"}
    for edge in chart.transitions:
        if edge.event and edge.delay is None and edge.event != "*":
            names.add(edge.event.removesuffix(".*"))
    for node in chart.states:
        for activity in node.activities:
            names.update(activity.posts)
    return sorted(n for n in names if not n.startswith(TIMER_PREFIX + "."))


def delays(chart: Chart) -> list[float]:
    found = {0.0}
    for node in chart.states:
        found.update(d for d, _ in node.timers)
        for fn in (*node.on_entry, *node.on_exit):
            if isinstance(fn, Send) and fn.delay:
                found.add(fn.delay)
    for edge in chart.transitions:
        found.update(fn.delay for fn in edge.actions if isinstance(fn, Send) and fn.delay)
    return sorted(found)


def walk(chart: Chart, seed: int, length: int) -> list[str | float]:
    rng = random.Random(seed)
    events, waits = alphabet(chart), delays(chart)
    return [rng.choice(waits) if rng.random() < 0.25 else rng.choice(events) for _ in range(length)]


@dataclass
class Case:
    name: str
    build: Callable[[], Chart]
    steps: list[str | float]
    closed_guards: bool = False


def cases() -> list[Case]:
    out: list[Case] = []
    for name, build in STRUCTURAL.items():
        chart = build()
        script = SCRIPTS[name]
        closed = name == "kitchen_sink"
        out.append(Case(f"{name}-script", build, script, closed))
        out.extend(Case(f"{name}-walk{seed}", build, script + walk(chart, seed, 40), closed) for seed in range(2))
    for name in catalog.names():
        chart = catalog.load(name)
        python_guards = any(e.guard is not None and not isinstance(e.guard, In) for e in chart.transitions)
        for seed in range(3):
            out.append(Case(f"{name}-walk{seed}", catalog.entry(name).build, walk(chart, seed, 60), python_guards))
    return out


CASES = cases()


# -- SCION -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scion_results() -> dict[str, dict[str, Any]]:
    node = shutil.which("node")
    require("SCION (npm @scion-scxml/scxml)", bool(node) and (SCION_DIR / "node_modules" / "@scion-scxml").is_dir())
    assert node is not None
    job = {"cases": [{"name": c.name, "scxml": to_scxml(c.build()), "steps": _steps(c.steps)} for c in CASES]}
    proc = subprocess.run(
        [node, str(SCION_DIR / "drive.cjs")], input=json.dumps(job), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {c["name"]: c for c in json.loads(proc.stdout)["cases"]}


def _steps(steps: list[str | float]) -> list[dict[str, Any]]:
    return [{"event": s} if isinstance(s, str) else {"advance": s} for s in steps]


def _step_name(steps: list[str | float], i: int) -> str:
    if i == 0:
        return "start"
    step = steps[i - 1]
    return f"event {step!r}" if isinstance(step, str) else f"advance {step:g}s"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_scion_runs_the_exported_scxml_like_our_interpreter(case: Case, scion_results: dict[str, Any]) -> None:
    theirs = scion_results[case.name]
    assert "error" not in theirs, f"SCION refused the export of {case.name}:\n{theirs.get('error')}"
    chart = case.build()
    flattened = ET.fromstring(to_scxml(chart)).find(f".//*[@id='{chart.root.id}']") is None
    ours = run_ours(chart, case.steps, close_python_guards=case.closed_guards)
    assert len(theirs["records"]) == len(ours)
    for i, (mine, other) in enumerate(zip(ours, theirs["records"], strict=True)):
        where = f"{case.name}, after {_step_name(case.steps, i)} (step {i})"
        assert other["errors"] == [], f"{where}: SCION raised {other['errors']}"
        assert mine["errors"] == [], f"{where}: we raised {mine['errors']}"
        assert other["final"] == mine["final"], f"{where}: SCION final={other['final']}, ours {mine['final']}"
        if not mine["final"]:
            config = set(other["config"]) | ({chart.root.id} if flattened else set())
            assert sorted(config) == mine["config"], f"{where}: configurations differ"
        assert other["fired"] == mine["fired"], f"{where}: delayed events differ"
        assert other["actions"] == mine["actions"], f"{where}: actions differ"


def test_every_shipped_chart_has_a_scion_case() -> None:
    assert {c.name.split("-")[0] for c in CASES} >= set(catalog.names())
    qualifying = {c.name.split("-")[0] for c in CASES if not c.closed_guards}
    assert {"stow_demo", "cell"} <= qualifying  # In() guards or none: they run as written


# -- mermaid-cli -------------------------------------------------------------------------------------


def mermaid_charts() -> dict[str, Chart]:
    """The shipped charts, and one with every construct (each chart costs mmdc a page load)."""
    charts = {name: catalog.load(name) for name in catalog.names()}
    charts["kitchen_sink"] = kitchen_sink()
    return charts


def _browser() -> str | None:
    return os.environ.get("PUPPETEER_EXECUTABLE_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Chart], Path, str]]:
    browser = _browser()
    require("mermaid-cli (npm @mermaid-js/mermaid-cli)", MMDC.is_file())
    require("chromium (Debian package)", browser is not None)
    assert browser is not None
    out = tmp_path_factory.mktemp("mermaid")
    config = out / "puppeteer.json"
    # A patient launch: puppeteer's default 30 s to start the browser is short on a loaded CI machine.
    launch = {"executablePath": browser, "args": ["--no-sandbox", "--disable-gpu"], "timeout": 120_000}
    config.write_text(json.dumps(launch))
    charts = mermaid_charts()
    # One Markdown file, one ```mermaid block per chart: mmdc renders them all with one browser.
    md = out / "charts.md"
    md.write_text("".join(f"## {name}\n\n```mermaid\n{to_mermaid(chart)}```\n\n" for name, chart in charts.items()))
    proc = subprocess.run(
        [str(MMDC), "--quiet", "--puppeteerConfigFile", str(config), "--input", str(md),
         "--output", str(out / "charts.out.md"), "--outputFormat", "svg"],
        capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    yield charts, out, (proc.stdout + proc.stderr if proc.returncode else "")


@pytest.mark.timeout(180)  # one browser, a page per chart: ~4 s each on a loaded 2-core machine
def test_mmdc_renders_every_chart(rendered: tuple[dict[str, Chart], Path, str]) -> None:
    charts, out, failure = rendered
    assert not failure, f"mmdc refused an exported chart:\n{failure[-4000:]}"
    for i, (name, chart) in enumerate(charts.items(), start=1):
        svg_path = out / f"charts.out-{i}.svg"
        assert svg_path.is_file(), f"{name}: no SVG ({sorted(p.name for p in out.iterdir())})"
        svg = ET.parse(svg_path).getroot()
        assert svg.tag == "{http://www.w3.org/2000/svg}svg", name
        text = " ".join(" ".join(el.itertext()) for el in svg.iter())
        assert "Syntax error" not in text, name
        missing = [n.id for n in chart.states if n.kind != "history" and n.id not in text and n is not chart.root]
        assert not missing, f"{name}: states not drawn: {missing}"


def test_scxml_export_namespace_and_datamodel() -> None:
    """What SCION needs to load a chart: ecmascript, and no element outside SCXML's namespace."""
    charts = {name: catalog.load(name) for name in catalog.names()} | {n: b() for n, b in STRUCTURAL.items()}
    for name, chart in charts.items():
        root = ET.fromstring(to_scxml(chart))
        assert root.get("datamodel") == "ecmascript", name
        foreign = {el.tag for el in root.iter() if isinstance(el.tag, str) and not el.tag.startswith(f"{{{SCXML_NS}}}")}
        assert not foreign, f"{name}: elements outside SCXML: {foreign}"
