"""The controller's recorder: the event log's channels, their JSON schemas, and sample batches.

`Recorder` is the port the workcells and sensor taps write through; `LogRecorder` implements it over an `EventLog`.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel

from .batch import BATCH_SCHEMA_NAME, SampleBatcher
from .writer import EventLog

_OBJECT = {"type": "object"}
SCHEMAS: dict[str, dict[str, Any]] = {
    "run.meta": {"type": "object", "description": "what ran: task, seed, faults, config, versions",
                 "required": ["mode"]},
    "port.call": {"type": "object", "description": "a Workcell call by the charts (an output)",
                  "properties": {"seq": {"type": "integer"}, "method": {"type": "string"}, "args": _OBJECT},
                  "required": ["seq", "method", "args"]},
    "port.reply": {"type": "object", "description": "the reply to a Workcell call (an input)",
                   "properties": {"seq": {"type": "integer"}, "method": {"type": "string"}, "result": {}},
                   "required": ["seq", "method", "result"]},
    "chart.transition": {"type": "object", "description": "a statechart transition",
                         "properties": {"chart": {"type": "string"}, "state": {"type": ["string", "null"]},
                                        "target": {"type": "array", "items": {"type": "string"}},
                                        "event": {"type": ["string", "null"]}},
                         "required": ["chart", "state", "target", "event"]},
    "cell.command": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
    "plc.status": {"type": "object", "properties": {"connected": {"type": "boolean"}}, "required": ["connected"]},
    "robot.halt": _OBJECT,
    "camera.change": {"type": "object", "description": "10 Hz frame change while a motion is watched",
                      "properties": {"dt_s": {"type": "number"}, "fraction": {"type": "number"}}},
    "camera.frame": _OBJECT,
    "camera.view": {"type": "object", "description": "a bin's frame from its view pose (a real camera), or why not",
                    "properties": {"bin": {"type": "string"}, "ok": {"type": "boolean"},
                                   "frame_seq": {"type": "integer"}, "detail": {"type": "string"}},
                    "required": ["bin", "ok"]},
    "robot.event": {"type": "object", "description": "robot link and status events (cellctl run)",
                    "properties": {"kind": {"type": "string"}, "message": {"type": "string"}}},
    "reflex.trip": {"type": "object", "description": "the force reflex halted the robot",
                    "properties": {"force_n": {"type": "number"}, "limit_n": {"type": "number"}}},
    "run.devices": {"type": "object", "description": "where the devices of a real-time run answered"},
    "driver.incidents": {"type": "object", "description": "driver incident counters (written when they change)",
                         "additionalProperties": {"type": "object",
                                                  "additionalProperties": {"type": "integer"}}},
    "fc.server": {"type": "object", "description": "the FC-facing OPC UA server's endpoint",
                  "properties": {"url": {"type": "string"}}, "required": ["url"]},
    "fc.report": {"type": "object", "description": "a report committed to the outbox (before the FC heard of it)",
                  "properties": {"report_id": {"type": "integer"}, "task_id": {"type": "string"},
                                 "kind": {"type": "string"}}, "required": ["report_id", "task_id", "kind"]},
    "fc.recovery": {"type": "object", "description": "tasks the last run left unfinished, reported as handoffs",
                    "properties": {"alarm": {"type": "string"}, "handoffs": {"type": "array"}}},
    "run.end": {"type": "object", "description": "how the run ended: end state, outcomes"},
}
SAMPLE_TOPICS: dict[str, tuple[str, ...]] = {"ft.wrench": ("fz",), "robot.suction": ("kpa",)}
# A real F/T sensor streams all six axes (the simulated cell logs the force it models, fz).
REAL_SAMPLE_TOPICS: dict[str, tuple[str, ...]] = {"ft.wrench": ("fx", "fy", "fz", "tx", "ty", "tz"),
                                                  "robot.suction": ("kpa",)}


class Recorder(Protocol):
    """Where a workcell writes what its sensors and devices produced, and its calls and replies (the event log)."""

    def record(self, topic: str, t_s: float, payload: BaseModel | dict[str, Any]) -> None: ...

    def record_samples(self, topic: str, t0_s: float, rate_hz: float, columns: dict[str, np.ndarray]) -> None: ...


class LogRecorder:
    """Writes records and sample batches to an `EventLog` (channels declared up front)."""

    def __init__(self, log: EventLog, sample_topics: dict[str, tuple[str, ...]] = SAMPLE_TOPICS) -> None:
        self.log = log
        for topic, schema in SCHEMAS.items():
            log.add_channel(topic, f"cellctl.{topic}", schema)
        for topic, fields in sample_topics.items():
            log.add_channel(topic, BATCH_SCHEMA_NAME, SampleBatcher(topic, fields).json_schema())

    def record(self, topic: str, t_s: float, payload: BaseModel | dict[str, Any]) -> None:
        self.log.write(topic, t_s, payload)

    def record_samples(self, topic: str, t0_s: float, rate_hz: float, columns: dict[str, np.ndarray]) -> None:
        """One batch record: ``columns["t"]`` holds offsets (s) from ``t0_s``, the rest one column per field."""
        dt = columns["t"]
        record: dict[str, Any] = {"t0": t0_s, "dt_ns": np.rint(np.asarray(dt) * 1e9).astype(np.int64).tolist()}
        for name, values in columns.items():
            if name != "t":
                record[name] = np.round(np.asarray(values, dtype=np.float64), 4).tolist()
        self.log.write(topic, t0_s, record)
