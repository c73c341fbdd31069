"""The `cellctl` command line."""

from __future__ import annotations

import enum
import json
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import anyio
import structlog
import typer

from cellctl import __version__
from cellctl.commands import chart_import as chart_import_cmd
from cellctl.commands.catalogue import catalogue_app
from cellctl.commands.chart import ScriptedEvent, simulate
from cellctl.commands.models import models_app
from cellctl.runtime import logging as logs
from statecharts import catalog
from statecharts.engine import Chart, TraceRecord
from statecharts.engine.check import check
from statecharts.engine.export import to_mermaid, to_scxml

app = typer.Typer(
    name="cellctl",
    help="Controller for a robotic stow-and-pick workcell.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
chart_app = typer.Typer(help="Inspect the statecharts: list, export, check, simulate, import.", no_args_is_help=True)
app.add_typer(chart_app, name="chart")
log_app = typer.Typer(help="Read event logs (MCAP files written by the controller).", no_args_is_help=True)
app.add_typer(log_app, name="log")
app.add_typer(models_app, name="models")
app.add_typer(catalogue_app, name="catalogue")
log = structlog.get_logger("cellctl")


class ExportFormat(enum.StrEnum):
    mermaid = "mermaid"
    scxml = "scxml"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cellctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Controller for a robotic stow-and-pick workcell."""
    try:
        logs.configure(log_level)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from None


def _entry(name: str) -> catalog.Entry:
    try:
        return catalog.entry(name)
    except KeyError as exc:
        raise typer.BadParameter(exc.args[0], param_hint="NAME") from None


def _load(name: str) -> Chart:
    return _entry(name).build()


@chart_app.command("list")
def chart_list() -> None:
    """List the known charts with their size and description."""
    for name in catalog.names():
        chart = catalog.load(name)
        size = f"{len(chart.states):>3} states {len(chart.transitions):>3} transitions"
        typer.echo(f"{name:<16} {size}  {chart.description}")


@chart_app.command("export")
def chart_export(
    name: Annotated[str, typer.Argument(help="Chart name (see `cellctl chart list`).")],
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")] = ExportFormat.mermaid,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")] = None,
) -> None:
    """Export a chart as Mermaid stateDiagram-v2 or W3C SCXML."""
    chart = _load(name)
    text = to_mermaid(chart) if fmt is ExportFormat.mermaid else to_scxml(chart)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        log.info("chart exported", chart=name, format=fmt.value, path=str(output))


@chart_app.command("check")
def chart_check(
    name: Annotated[str | None, typer.Argument(help="Chart name; all charts when omitted.")] = None,
) -> None:
    """Statically check charts: unreachable states, dead ends, unhandled activity events.

    Exits 1 and lists the findings when there are any.
    """
    names = [name] if name else catalog.names()
    total = 0
    for chart_name in names:
        findings = check(_load(chart_name))
        total += len(findings)
        if findings:
            typer.echo(f"{chart_name}: {len(findings)} finding(s)")
            for finding in findings:
                typer.echo(f"  - {finding}")
        else:
            typer.echo(f"{chart_name}: ok")
    if total:
        raise typer.Exit(1)


class ImportFormat(enum.StrEnum):
    tree = "tree"
    mermaid = "mermaid"
    scxml = "scxml"


@chart_app.command("import")
def chart_import(
    file: Annotated[Path, typer.Argument(help="An SCXML document (e.g. from Qt Creator's SCXML editor).")],
    bind: Annotated[
        str | None,
        typer.Option(help="Bind guards, actions and activities by name to this chart's Python (see `chart list`); "
                     "every name must then resolve."),
    ] = None,
    fmt: Annotated[
        ImportFormat, typer.Option("--format", "-f", help="tree: what was built; or export it back.")
    ] = ImportFormat.tree,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")] = None,
) -> None:
    """Load an SCXML chart: validate it, print what it built, or export it back as Mermaid or SCXML.

    The structural subset (docs/statecharts-export.md, "Import"); anything outside it is an error
    naming the element and line (exit 1). Without --bind, guards, actions and activities are
    placeholders: the chart checks and exports, it does not run.
    """
    if bind is not None and bind not in catalog.names():
        raise typer.BadParameter(f"no chart named {bind!r}; known charts: {', '.join(catalog.names())}",
                                 param_hint="--bind")
    try:
        imported = chart_import_cmd.load(file, bind)
    except chart_import_cmd.ImportFailed as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    chart = imported.chart
    if fmt is ImportFormat.tree:
        lines = chart_import_cmd.describe(chart)
        if imported.unbound:
            lines.append(f"unbound, placeholders (checks and exports, does not run): {', '.join(imported.unbound)}")
        findings = check(chart)
        lines.extend(f"check: {f}" for f in findings) if findings else lines.append("check: ok")
        text = "\n".join(lines) + "\n"
    else:
        text = to_mermaid(chart) if fmt is ImportFormat.mermaid else to_scxml(chart)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        log.info("chart imported", chart=chart.name, format=fmt.value, path=str(output))


@chart_app.command("simulate")
def chart_simulate(
    name: Annotated[str, typer.Argument(help="Chart name (see `cellctl chart list`).")],
    event: Annotated[
        list[str] | None, typer.Option("--event", "-e", help="SECONDS:EVENT to post, e.g. 0:start (repeatable).")
    ] = None,
    until: Annotated[float, typer.Option(help="Stop after this many virtual seconds.", min=0)] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per trace record.")] = False,
) -> None:
    """Run a chart on virtual time against scripted events and print its trace."""
    try:
        script = [ScriptedEvent.parse(text) for text in event or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--event") from None
    entry = _entry(name)

    def show(record: TraceRecord) -> None:
        typer.echo(json.dumps(record.as_dict()) if as_json else str(record))

    final = simulate(entry.build(), entry.data(), script, until, show)
    log.info("simulation ended", chart=name, final_state=final, until_s=until)


@log_app.command("show")
def log_show(
    file: Annotated[Path, typer.Argument(help="An event log (.mcap); a rotated set is followed from its first file.")],
    topic: Annotated[list[str] | None, typer.Option("--topic", "-t", help="Only this topic (repeatable).")] = None,
    since: Annotated[float | None, typer.Option(help="Only records at or after this log time, s.")] = None,
    until: Annotated[float | None, typer.Option(help="Only records before this log time, s.")] = None,
    limit: Annotated[int | None, typer.Option(help="Stop after N records.", min=0)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per record: t, topic, payload.")] = False,
) -> None:
    """Print an event log as a timeline: log time (s), topic, a summary of the payload.

    Records come in log-time order within each file. The last line says how the log ends: complete, torn at
    byte N (cut short by a crash: every record before N is shown, and what could be decoded of a chunk cut
    short), or corrupt at byte N (the records before it are shown). Exits 0 for a complete or torn log, 2 if
    the file is missing, not a readable log, or corrupt.
    """
    from cellctl.commands.log import show

    def error(text: str) -> None:
        typer.echo(text, err=True)

    status = show(
        file, topics=topic, since_s=since, until_s=until, limit=limit, as_json=as_json, echo=typer.echo, error=error
    )
    if status:
        raise typer.Exit(status)


class TaskMix(enum.StrEnum):
    stow = "stow"
    pick = "pick"
    mixed = "mixed"


class FaultProfile(enum.StrEnum):
    none = "none"
    typical = "typical"
    harsh = "harsh"


class PerceptionChoice(enum.StrEnum):
    learned = "learned"
    oracle = "oracle"


class CellKind(enum.StrEnum):
    stow = "stow"
    pick = "pick"


@app.command("run")
def run(
    config: Annotated[Path | None, typer.Option("--config", help="TOML configuration (default: the built-in "
                                                "simulated cell; see cellctl/config.py for the keys).")] = None,
    cell: Annotated[CellKind | None, typer.Option("--cell", help="stow or pick (overrides [cell].task).")] = None,
    cycles: Annotated[int | None, typer.Option(help="Stop after this many cycles (0: until Ctrl-C; overrides "
                                              "[cell].cycles).", min=0)] = None,
    log_dir: Annotated[Path | None, typer.Option("--log-dir", help="Where the run's event log goes (overrides "
                                                 "[log].dir).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run's summary as one JSON object at the end.")]
    = False,
    perception: Annotated[PerceptionChoice | None, typer.Option(
        help="The simulated cell's perception: learned (the models on camera frames) or oracle (the renderer's "
             "labels); overrides [perception].mode.")] = None,
) -> None:
    """Run the cell controller in real time: the stow (or pick) cell over OPC UA, Modbus TCP and UDP.

    With no configuration it starts the built-in simulated cell (PLC, robot and F/T sensor served in-process
    on 127.0.0.1) and connects to it. A status line shows state, cycle and counters; every run writes an
    MCAP event log (`cellctl log show`, `cellctl replay`). Ctrl-C or SIGTERM stops the cell safely and closes
    the log; a second Ctrl-C, or a second signal a second or more after the first, aborts. Exit 0 after a
    clean stop or completion (a signal before the cell runs too), 1 when the cell aborted, 2 on bad input or
    when the cell had to stop because its event log could not be written (full disk).
    """
    from cellctl.commands.run import run_cell
    from cellctl.config import ConfigError, load_config

    try:
        cfg = load_config(config, task=cell.value if cell is not None else None)
        updates: dict[str, object] = {}
        if cycles is not None:
            updates["cycles"] = cycles
        if updates:
            cfg = cfg.model_copy(update={"cell": cfg.cell.model_copy(update=updates)})
        if log_dir is not None:
            cfg = cfg.model_copy(update={"log": cfg.log.model_copy(update={"dir": log_dir})})
        if perception is not None:
            cfg = cfg.model_copy(update={"perception": cfg.perception.model_copy(update={"mode": perception.value})})
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from cellctl.fc.server import FcServerError
    from cellctl.fc.store import StoreError
    from cellctl.runtime.signals import process_listener
    from drivers.camera import CameraError
    from drivers.sim.cell_devices import DeviceStartError
    from perception.learned.contracts import ModelError

    try:
        summary = anyio.run(partial(run_cell, cfg, signals=process_listener()))
    except* (ConfigError, OSError, DeviceStartError, StoreError, FcServerError, ModelError, CameraError) as group:
        # a port in use, the log not writable, no answer, the store unusable, the PackML nodeset missing, no camera
        for leaf in _leaves(group):
            typer.echo(f"error: {leaf}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(summary))
    if "error" in summary:  # the cell was stopped safely because of it (a full log disk)
        typer.echo(f"error: {summary['error']}; {summary['log_records_lost']} log records lost; "
                   f"the cell was stopped ({summary['end_state']})", err=True)
        raise typer.Exit(2)
    if summary.get("stopped_before_start"):
        typer.echo(f"stopped before the cell started ({summary['stopped_before_start']}); log: {summary['log']}",
                   err=True)
    raise typer.Exit(1 if summary["end_state"] == "aborted" else 0)


@app.command("sim")
def sim(
    task: Annotated[TaskMix, typer.Option(help="Which tasks the cell runs (mixed alternates stow and pick).")]
    = TaskMix.stow,
    cycles: Annotated[int, typer.Option(help="Task cycles to run.", min=1, max=1_000_000)] = 10,
    seed: Annotated[int, typer.Option(help="World, conveyor, orders and faults all follow from it.", min=0)] = 0,
    faults: Annotated[FaultProfile, typer.Option(help="Fault profile of the simulated devices.")] = FaultProfile.none,
    log_file: Annotated[Path | None, typer.Option("--log", help="Write the event log (MCAP) here (replaced).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (the default prints a table).")]
    = False,
    perception: Annotated[PerceptionChoice, typer.Option(
        help="learned: the models on camera frames alone (docs/models.md); oracle: the renderer's labels, for "
             "ablation.")] = PerceptionChoice.learned,
    models: Annotated[Path | None, typer.Option(
        help="A directory with segmenter.onnx, pick.onnx and embedding.onnx (default: the shipped models/).",
        file_okay=False)] = None,
) -> None:
    """Run the cell charts against the simulated cell on virtual time (deterministic from the seed).

    Prints task, seed, cycles, perception (learned or oracle), outcomes (done / handoff / fault) and by_task (the
    same per stow and pick), wrong_item_picks, handoff_reasons, virtual_s, wall_s, units_per_hour (virtual time)
    and trace_sha256 (the transition trace): the same seed prints the same output except wall_s.
    """
    from cellctl.commands.sim import SimOptions, run_sim
    from cellctl.config import PerceptionSection
    from perception.learned.contracts import ModelError

    section = None if models is None else PerceptionSection(
        segmenter=models / "segmenter.onnx", pick=models / "pick.onnx", embedding=models / "embedding.onnx")
    try:
        summary = run_sim(SimOptions(task.value, cycles, seed, faults.value, log=log_file,  # type: ignore[arg-type]
                                     perception=perception.value, models=section))  # type: ignore[arg-type]
    except (OSError, ValueError, ModelError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(summary))
        return
    for key, value in summary.items():
        typer.echo(f"{key:16} {json.dumps(value) if isinstance(value, dict) else value}")


@app.command("replay")
def replay_cmd(
    file: Annotated[Path, typer.Argument(help="An event log written by `cellctl sim` or `cellctl run`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Feed a log's recorded inputs through the current charts on virtual time and compare.

    Prints records, transitions, diverged, first_divergence (time, expected, actual), speedup (virtual over
    wall time), ending (complete, or incomplete: no run.end) and a message saying where an incomplete log
    ends ("log ends without run.end at t=...") or that there was nothing to replay (the cell never ran).
    Exit 0 without divergence, 1 with one (a behavioural divergence only), 2 when the log cannot be read or
    replayed (missing, not MCAP, corrupt), 3 when the log ends without run.end (a killed run, a torn file)
    and what it holds replays without divergence.
    """
    from cellctl.commands.replay import Entry, ReplayError, ReplayLog, replay_log
    from cellctl.eventlog import LogFormatError, read_log

    try:
        reader = read_log(file)
        log = ReplayLog.of(Entry(r.t_s, r.topic, r.payload) for r in reader)
        summary = replay_log(log, ending=reader.ending)
    except (LogFormatError, ReplayError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        for key, value in summary.items():
            typer.echo(f"{key:22} {json.dumps(value) if isinstance(value, dict) else value}")
    if summary["diverged"]:
        raise typer.Exit(1)
    if summary["ending"] == "incomplete":
        raise typer.Exit(3)


@app.command("devices")
def devices(
    sim: Annotated[bool, typer.Option("--sim", help="Start the simulated devices (the only kind this command starts).")]
    = False,
    demo: Annotated[bool, typer.Option("--demo", help="The protocol demo instead of the simulated cell: a fixed pod "
                                       "POD-0001 and an item every --arrival-period s, no world behind the robot, no "
                                       "sim-service.")] = False,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    opcua_port: Annotated[int, typer.Option(help="OPC UA (PLC) port; 0 picks a free one.", min=0, max=65535)] = 4840,
    modbus_port: Annotated[int, typer.Option(help="Modbus TCP (robot) port; 0 picks a free one.", min=0, max=65535)]
    = 5020,
    ft_port: Annotated[int, typer.Option(help="F/T sensor UDP port; 0 picks a free one.", min=0, max=65535)] = 49152,
    service_port: Annotated[int, typer.Option(help="sim-service port (camera, perception, pick orders; TCP, JSON "
                                              "lines); 0 picks a free one.", min=0, max=65535)] = 4850,
    ft_rate: Annotated[float, typer.Option(help="F/T stream rate in Hz.", min=1, max=10_000)] = 1000.0,
    seed: Annotated[int, typer.Option(help="The world (pod, items, orders) and its fault draws follow from it.",
                                      min=0, max=2**32 - 1)] = 0,
    faults: Annotated[FaultProfile, typer.Option(help="Fault profile of the simulated cell.")] = FaultProfile.none,
    time_scale: Annotated[float, typer.Option(help="Primitive durations are multiplied by this.", min=0.01, max=1.0)]
    = 1.0,
    arrival_period: Annotated[float | None, typer.Option(help="Seconds between demo item arrivals, 0 for none "
                                                         "(default 15); implies --demo.", min=0)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the endpoints as one JSON line once all listen "
                                          "(instead of the table).")] = False,
    perception: Annotated[PerceptionChoice, typer.Option(
        help="How the sim-service perceives: learned (the shipped models on its camera's frames) or oracle (the "
             "renderer's labels).")] = PerceptionChoice.learned,
) -> None:
    """Serve the simulated cell until Ctrl-C: PLC (OPC UA), robot (Modbus TCP), F/T sensor (UDP), sim-service (TCP).

    The sim-service serves the EOAT camera, perception and pick orders of the same world (JSON lines). A controller
    in another process runs against it all with cell.devices = "external" and these endpoints in plc.url,
    robot.host/port, ft.host/port and camera (kind = "sim-service"): the printout ends with those settings.
    Other tools (mbpoll, an OPC UA client) can be pointed at the devices too.

    --json prints one JSON line once everything listens: kind (cell or demo), opcua, modbus and ft (host, port),
    ft_rate_hz, service (host, port; null with --demo), world (seed, faults, time_scale).
    """
    if not sim:
        message = "only --sim is supported: real devices are reached by the controller"
        raise typer.BadParameter(message, param_hint="--sim")
    from cellctl.commands.devices import (
        DeviceStartError,
        Served,
        SimCellConfig,
        SimCellServers,
        SimDevices,
        SimDevicesConfig,
    )
    from perception.learned.contracts import ModelError

    server: SimCellServers | SimDevices
    if demo or arrival_period is not None:
        server = SimDevices(SimDevicesConfig(
            host=host, opcua_port=opcua_port, modbus_port=modbus_port, ft_port=ft_port, ft_rate_hz=ft_rate,
            arrival_period_s=15.0 if arrival_period is None else arrival_period, seed=seed,
        ))
    else:
        try:
            server = SimCellServers(SimCellConfig(
                host=host, opcua_port=opcua_port, modbus_port=modbus_port, ft_port=ft_port, ft_rate_hz=ft_rate,
                seed=seed, faults=faults.value, time_scale=time_scale,
            ), service_port=service_port, perception=perception.value)
        except ModelError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            served: Served = await tg.start(server.serve)
            log.info("simulated devices ready", **served.as_json())
            if as_json:
                typer.echo(json.dumps(served.as_json()))
            else:
                what = "simulated cell" if served.kind == "cell" else "simulated devices (protocol demo, no world)"
                typer.echo(f"{what} (Ctrl-C to stop):")
                for line in served.lines():
                    typer.echo(line)
                if served.kind == "cell":
                    typer.echo("a controller in another process runs against them with (cellctl run --config):")
                    for line in served.config_lines():
                        typer.echo(f"  {line}")
            sys.stdout.flush()
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("stopping simulated devices", signal=signal.Signals(signum).name)
                    tg.cancel_scope.cancel()
                    break

    try:
        anyio.run(serve)
    except* DeviceStartError as group:
        for leaf in _leaves(group):
            typer.echo(f"error: {leaf}", err=True)
        raise typer.Exit(2) from None
    if not as_json:
        typer.echo("stopped")


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def main() -> None:
    app()
