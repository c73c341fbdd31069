"""FC integration: the FC-facing OPC UA server, the durable outbox, crash recovery.

    store.py       CellStore: one SQLite file (WAL, synchronous=FULL): the outbox of reports, the FC's pick
                   requests, the task journal; a report is committed here before anyone is told
    server.py      FcServer: the asyncua server the FC talks to (PackML from OPC 30050's nodeset, our counters,
                   report events, AcknowledgeReports, RequestPick)
    control.py     CellControl / ChartControl: the cell as the server sees and commands it
    packml.py      PackTags state numbers and the cell chart's map to them
    reporting.py   ReportingWorkcell, FcOrders, StowJournal: reports, orders and the journal through the store
    recovery.py    recover(): what a crash left unfinished, reported once as handoffs
    simclient.py   SimFc: the simulated FC, a real OPC UA client of the server (with its ledger)
    config.py      FcConfig: the [fc] section

Importing this package imports none of them (asyncua is loaded by the server and client only).
"""

from typing import TYPE_CHECKING

from cellctl._exports import lazy

if TYPE_CHECKING:
    from .config import FcConfig
    from .control import CellControl, ChartControl
    from .recovery import Recovery, recover
    from .reporting import FcOrders, ReportingWorkcell, StowJournal
    from .server import FcServer
    from .simclient import Ledger, SimFc
    from .store import CellStore, OutboxEntry, StoreError

_EXPORTS = {"FcConfig": ".config", "CellControl": ".control", "ChartControl": ".control", "Recovery": ".recovery",
            "recover": ".recovery", "FcOrders": ".reporting", "ReportingWorkcell": ".reporting",
            "StowJournal": ".reporting", "FcServer": ".server", "Ledger": ".simclient", "SimFc": ".simclient",
            "CellStore": ".store", "OutboxEntry": ".store", "StoreError": ".store"}
__getattr__ = lazy(__name__, _EXPORTS)
__all__ = [
    "CellControl", "CellStore", "ChartControl", "FcConfig", "FcOrders", "FcServer", "Ledger", "OutboxEntry",
    "Recovery", "ReportingWorkcell", "SimFc", "StoreError", "StowJournal", "recover",
]
