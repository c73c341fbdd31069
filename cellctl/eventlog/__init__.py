"""The append-only MCAP event log (design.md, "Event log and replay").

Writing: `EventLog.open(path)` then `add_channel` / `write`; high-rate samples go through a
`SampleBatcher` (`EventLog.batcher`). Reading: `read_log(path)` yields `LogRecord`s in log-time
order per file, across a rotated set, and tolerates a file torn by a crash; once read, its `ending`
(a `LogEnding`) says whether the log is complete, torn at byte N or corrupt at byte N.

Files: MCAP, no profile, JSON messages with `jsonschema` schemas, zstd chunks. A log that outgrows
`rotate_bytes` continues in `<stem>-0001<suffix>`, `<stem>-0002<suffix>`, … next to the first file.

The controller writes through `LogRecorder` (the `Recorder` port: channels and schemas declared up front);
`eventlog.sensors.SensorLog` batches a real-time run's driver streams into it (not re-exported: it imports the drivers).
"""

from .batch import FT_FIELDS, SampleBatcher, is_batch, iter_samples
from .naming import part_path, rotated_set
from .reader import LogEnding, LogFormatError, LogReader, LogRecord, read_log
from .recorder import REAL_SAMPLE_TOPICS, SCHEMAS, LogRecorder, Recorder
from .writer import EventLog

__all__ = [
    "FT_FIELDS",
    "REAL_SAMPLE_TOPICS",
    "SCHEMAS",
    "EventLog",
    "LogEnding",
    "LogFormatError",
    "LogReader",
    "LogRecord",
    "LogRecorder",
    "Recorder",
    "SampleBatcher",
    "is_batch",
    "iter_samples",
    "part_path",
    "read_log",
    "rotated_set",
]
