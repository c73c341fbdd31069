"""Load a chart from W3C SCXML: `Chart.from_scxml(text, actions=..., guards=...)`.

The structural subset of SCXML 1.0 (docs/statecharts-export.md, "Import"), and everything
`export.to_scxml` writes, so export then import gives the same chart:

- <scxml> (its `initial`, `name`, `datamodel` null or ecmascript), <state>, <parallel>, <final>,
  <history type="shallow|deep"> with its default <transition>, `initial="a b"` and <initial>
  (whose transition may name the state's own history);
- <transition event cond target type="internal|external">, eventless ones, several event
  descriptors in one `event` (one transition each, in order);
- `cond`: `In('s')`, or the name of a guard in `guards` (`name`, `guards.name`, `guards['name']`);
- executable content in <onentry>, <onexit> and transitions: <raise event>, <send event delay id>
  with an ECMAScript literal as its <content expr> (or text), <cancel sendid>, and
  `<log cellctl:action="name"/>` calling the action of that name in `actions`;
- `after()` timers as the export writes them (an <onentry> <send> of `after.<state>.<n>`, its
  <cancel> on exit and the transitions on it);
- <final> donedata: `cellctl:donedata="name"` (from `donedata`) or <donedata><content expr>;
  `cellctl:activities="label(event ...) ..."` (from `activities`, posting the same events);
- comments before a state's first child element become its doc, the document's first its
  description; elements and attributes of Qt Creator's editor namespace (layout only) are skipped.

Anything else — <script>, <assign>, <if>, <invoke>, <param>, expressions, a guard or action the
bindings lack, an unknown attribute — is a `ScxmlImportError` naming the element and its line,
never dropped. `placeholders=True` binds every unknown name to a placeholder that raises when
run (`UnboundNameError`, so `error.execution` in a running chart): a chart to check and export,
not to run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .compiled import Chart
from .context import Action, ActivityContext, DoneData, Guard
from .ecmascript import parse_literal
from .errors import ChartDefinitionError, LiteralSyntaxError, ScxmlImportError, UnboundNameError
from .export import CELLCTL_NS, GUARDS, SCXML_NS
from .guards import In
from .model import (
    STATE_ID,
    Activity,
    Cancel,
    DoneValue,
    Final,
    History,
    Parallel,
    Raise,
    Send,
    State,
    Transition,
    callable_name,
)
from .xmltree import Element, parse

__all__ = ["Bindings", "Imported", "from_scxml", "read_scxml"]

QT_NS = "http://www.qt.io/2015/02/scxml-ext"  # Qt Creator's editor: geometry and colours only
_TIME = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(ms|s)\s*$")
_IN = re.compile(r"""^\s*In\(\s*(['"])([A-Za-z_][A-Za-z0-9_]*)\1\s*\)\s*$""")
_GUARD = re.compile(  # guards.name, guards['name'], name
    r"""^\s*(?:guards\.([A-Za-z_$][A-Za-z0-9_$]*)|guards\[\s*(['"])(.+?)\2\s*\]|([A-Za-z_$][A-Za-z0-9_$]*))\s*$"""
)
_ACTIVITY = re.compile(r"([^\s()]+)\(([^()]*)\)")
_TIMER = re.compile(r"^after\.([A-Za-z_][A-Za-z0-9_]*)\.(\d+)$")
_SCXML_PROCESSOR = "http://www.w3.org/TR/scxml/#SCXMLEventProcessor"
_STATES = ("state", "parallel", "final", "history")


def _cellctl(name: str) -> str:
    return f"{{{CELLCTL_NS}}}{name}"


@dataclass(frozen=True)
class Bindings:
    """The Python a document's names resolve to: actions, guards, activities (by label) and
    donedata functions, each by name."""

    actions: Mapping[str, Action[Any]] = field(default_factory=dict)
    guards: Mapping[str, Guard[Any]] = field(default_factory=dict)
    activities: Mapping[str, Activity] = field(default_factory=dict)
    donedata: Mapping[str, DoneData[Any]] = field(default_factory=dict)

    @classmethod
    def of_chart(cls, chart: Chart) -> Bindings:
        """Every named guard, action, activity and donedata function `chart` uses (the first one of
        a name wins): to import a chart exported from it, perhaps edited, with the same Python."""
        actions: dict[str, Action[Any]] = {}
        guards: dict[str, Guard[Any]] = {}
        activities: dict[str, Activity] = {}
        donedata: dict[str, DoneData[Any]] = {}
        for node in chart.states:
            for fn in (*node.on_entry, *node.on_exit):
                actions.setdefault(callable_name(fn), fn)
            for act in node.activities:
                activities.setdefault(act.label, act)
            if node.donedata is not None:
                donedata.setdefault(callable_name(node.donedata), node.donedata)
            if node.history_default is not None:
                for fn in node.history_default.actions:
                    actions.setdefault(callable_name(fn), fn)
        for edge in chart.transitions:
            if edge.guard is not None and not isinstance(edge.guard, In):
                guards.setdefault(callable_name(edge.guard), edge.guard)
            for fn in edge.actions:
                actions.setdefault(callable_name(fn), fn)
        return cls(actions, guards, activities, donedata)


class _Placeholder:
    """Stands for a name the bindings lack; raises `UnboundNameError` when run."""

    def __init__(self, kind: str, name: str) -> None:
        self.__name__ = name
        self.kind = kind

    def __call__(self, *args: object) -> Any:
        raise UnboundNameError(f"{self.kind} {self.__name__!r} was imported from SCXML without a binding")


def _placeholder_activity(label: str, posts: tuple[str, ...]) -> Activity:
    async def unbound(ctx: ActivityContext[Any]) -> None:
        raise UnboundNameError(f"activity {label!r} was imported from SCXML without a binding")

    return Activity(unbound, posts, label)


@dataclass(frozen=True)
class Imported:
    """What `read_scxml` built: the chart, and the names it bound to placeholders (each as
    "guard name", "action name", "activity label" or "donedata name", in document order)."""

    chart: Chart
    unbound: tuple[str, ...]


def read_scxml(
    text: str,
    *,
    actions: Mapping[str, Action[Any]] | None = None,
    guards: Mapping[str, Guard[Any]] | None = None,
    activities: Mapping[str, Activity] | None = None,
    donedata: Mapping[str, DoneData[Any]] | None = None,
    bindings: Bindings | None = None,
    placeholders: bool = False,
    name: str = "imported",
) -> Imported:
    """The chart an SCXML document describes (see the module docstring for the subset).

    Names resolve in `bindings` and then in the mappings given; `name` is the chart's name when
    the document has none. Raises `ScxmlImportError` (with `.line` and `.element`)."""
    base = bindings or Bindings()
    merged = Bindings(
        {**base.actions, **(actions or {})},
        {**base.guards, **(guards or {})},
        {**base.activities, **(activities or {})},
        {**base.donedata, **(donedata or {})},
    )
    importer = _Importer(merged, placeholders)
    chart = importer.chart(parse(text), name)
    return Imported(chart, tuple(dict.fromkeys(importer.unbound)))


def from_scxml(text: str, **options: Any) -> Chart:
    """`read_scxml(text, **options).chart`: what `Chart.from_scxml` calls."""
    return read_scxml(text, **options).chart


class _Importer:
    def __init__(self, bindings: Bindings, placeholders: bool) -> None:
        self.b = bindings
        self.placeholders = placeholders
        self.lines: dict[str, tuple[int, str]] = {}  # state id -> its element's line and tag
        self.unbound: list[str] = []

    # -- errors and checks ------------------------------------------------------------------

    @staticmethod
    def fail(el: Element, message: str) -> ScxmlImportError:
        return ScxmlImportError(el.line, el.tag, message)

    def check_attrs(self, el: Element, allowed: tuple[str, ...], cellctl: tuple[str, ...] = ()) -> None:
        for key in el.attrs:
            if key in allowed or key.startswith(f"{{{QT_NS}}}"):
                continue
            if key.startswith(f"{{{CELLCTL_NS}}}") and key[len(CELLCTL_NS) + 2 :] in cellctl:
                continue
            shown = key.replace(f"{{{CELLCTL_NS}}}", "cellctl:")
            raise self.fail(el, f"attribute {shown!r} is outside the subset this importer reads")

    def children(self, el: Element, allowed: tuple[str, ...]) -> list[Element]:
        """`el`'s SCXML child elements, each of a tag in `allowed`; Qt editor elements skipped."""
        out = []
        for child in el.elements:
            if child.ns == QT_NS:
                continue
            if child.ns != SCXML_NS:
                raise self.fail(child, f"element of namespace {child.ns or 'none'!r} inside <{el.tag}>: not SCXML")
            if child.tag not in allowed:
                raise self.fail(child, f"<{child.tag}> inside <{el.tag}> is outside the structural subset")
            out.append(child)
        if el.text.strip() and el.tag not in ("content",):
            raise self.fail(el, f"text inside <{el.tag}>: {el.text.strip()[:40]!r}")
        return out

    def state_id(self, el: Element) -> str:
        sid = el.attrs.get("id")
        if sid is None:
            raise self.fail(el, "a state needs an id (ids are how our charts, traces and logs name states)")
        if not STATE_ID.match(sid):
            raise self.fail(el, f"id {sid!r}: state ids must be identifiers ([A-Za-z_][A-Za-z0-9_]*)")
        if sid in self.lines:
            raise self.fail(el, f"id {sid!r} is used by more than one state (first at line {self.lines[sid][0]})")
        self.lines[sid] = (el.line, el.tag)
        return sid

    # -- the document -----------------------------------------------------------------------

    def chart(self, doc: Element, default_name: str) -> Chart:
        if doc.ns != SCXML_NS or doc.tag != "scxml":
            raise self.fail(doc, f"not an SCXML document: the root element must be <scxml> in namespace {SCXML_NS}")
        self.check_attrs(doc, ("version", "name", "initial", "datamodel", "binding"), ("root",))
        if doc.attrs.get("version", "1.0") != "1.0":
            raise self.fail(doc, f"version {doc.attrs['version']!r}: only SCXML 1.0 is read")
        if doc.attrs.get("datamodel", "null") not in ("null", "ecmascript"):
            raise self.fail(doc, f"datamodel {doc.attrs['datamodel']!r}: conditions are In() or named guards, so "
                            "only the null and ecmascript data models are read")
        if doc.attrs.get("binding", "early") != "early":
            raise self.fail(doc, "binding='late' needs a data model; the subset has none")
        name = doc.attrs.get("name", default_name)
        description = doc.leading_comment(QT_NS)
        if description.startswith(f"{name}: "):
            description = description[len(name) + 2 :]
        kids = self.children(doc, (*_STATES, "datamodel"))
        for dm in (k for k in kids if k.tag == "datamodel"):
            self.datamodel(dm)
        states = [k for k in kids if k.tag in _STATES]
        if not states:
            raise self.fail(doc, "the document has no state")
        root_id = doc.attrs.get(_cellctl("root"))
        wrapped = [k for k in states if root_id is not None and k.tag in ("state", "parallel")
                   and k.attrs.get("id") == root_id]
        if wrapped:
            root = self.wrapped_root(doc, wrapped[0], states)
        else:
            root_id = root_id or "root"
            if not STATE_ID.match(root_id):
                raise self.fail(doc, f"cellctl:root {root_id!r} is not a state id")
            self.lines[root_id] = (doc.line, doc.tag)
            children = [self.state(k) for k in states]
            if any(isinstance(c, History) for c in children):
                raise self.fail(doc, "<history> directly inside <scxml>: the document has no parent state for it")
            initial = self.initial_attr(doc) or _first_state(children, doc, self)
            root = State(root_id, *children, initial=initial)
        try:
            return Chart(name, root, description=description)
        except ChartDefinitionError as exc:
            line, tag = self.lines.get(exc.state, (doc.line, doc.tag))
            raise ScxmlImportError(line, tag, str(exc)) from None

    def wrapped_root(self, doc: Element, el: Element, states: list[Element]) -> State:
        """The export's form of a root with content of its own: one <state> under <scxml>, plus
        the generated end final its done event leads to."""
        for other in states:
            if other is not el and not (other.tag == "final" and other.attrs.get(_cellctl("generated")) == "end"):
                raise self.fail(other, f"cellctl:root names {el.attrs['id']!r}, so the document holds no other state")
        if doc.attrs.get("initial", el.attrs["id"]) != el.attrs["id"]:
            raise self.fail(doc, f"initial must be the root {el.attrs['id']!r} named by cellctl:root")
        spec = self.state(el, root=True)
        assert isinstance(spec, State)
        return spec

    def datamodel(self, el: Element) -> None:
        for data in self.children(el, ("data",)):
            self.check_attrs(data, ("id", "expr"))
            if data.attrs.get("id") != GUARDS:
                raise self.fail(data, f"<data id={data.attrs.get('id')!r}>: the subset has no data model; only the "
                                f"export's {GUARDS!r} declaration of the Python guards is read")

    # -- states -----------------------------------------------------------------------------

    def state(self, el: Element, root: bool = False) -> State | History:
        if el.tag == "history":
            return self.history(el)
        if el.tag == "final":
            return self.final(el)
        self.check_attrs(el, ("id", "initial"), ("activities",))
        sid = self.state_id(el)
        kids = self.children(el, ("onentry", "onexit", "transition", "initial", *_STATES, "datamodel", "invoke"))
        for k in kids:
            if k.tag in ("datamodel", "invoke"):
                why = "no data model" if k.tag == "datamodel" else "no invoke: activities are cellctl:activities"
                raise self.fail(k, f"<{k.tag}> is outside the structural subset ({why})")
        on_entry, timers = self.entry(sid, [k for k in kids if k.tag == "onentry"])
        on_exit = self.exit(sid, [k for k in kids if k.tag == "onexit"], timers)
        transitions: list[Transition] = []
        for k in kids:
            if k.tag == "transition":
                transitions.extend(self.transition(k, timers, root))
        children = [self.state(k) for k in kids if k.tag in _STATES]
        initial = self.initial(el, kids)
        if children and initial is None and el.tag == "state":
            initial = _first_state(children, el, self)
        if not children and initial is not None:
            raise self.fail(el, "an atomic state has no initial")
        kind = Parallel if el.tag == "parallel" else State
        if kind is Parallel and initial is not None:
            raise self.fail(el, "a <parallel> enters all its regions: it has no initial")
        return kind(sid, *children, initial=initial, transitions=transitions, on_entry=on_entry, on_exit=on_exit,
                    activities=self.activities(el), doc=el.leading_comment(QT_NS))

    def final(self, el: Element) -> Final:
        self.check_attrs(el, ("id",), ("donedata", "generated"))
        sid = self.state_id(el)
        kids = self.children(el, ("onentry", "onexit", "donedata"))
        on_entry, timers = self.entry(sid, [k for k in kids if k.tag == "onentry"])
        if timers:
            raise self.fail(el, "a final state has no transitions, so no after() timers")
        on_exit = self.exit(sid, [k for k in kids if k.tag == "onexit"], {})
        done: DoneData[Any] | None = None
        named = el.attrs.get(_cellctl("donedata"))
        if named is not None:
            done = self.bound(el, "donedata", named, self.b.donedata)
        for dd in (k for k in kids if k.tag == "donedata"):
            if done is not None:
                raise self.fail(dd, "a final state has one donedata")
            done = DoneValue(self.content_value(dd, "donedata"))
        return Final(sid, on_entry=on_entry, on_exit=on_exit, donedata=done, doc=el.leading_comment(QT_NS))

    def history(self, el: Element) -> History:
        self.check_attrs(el, ("id", "type"))
        sid = self.state_id(el)
        kind = el.attrs.get("type", "shallow")
        if kind not in ("shallow", "deep"):
            raise self.fail(el, f"type {kind!r}: a history is 'shallow' or 'deep'")
        kids = self.children(el, ("transition",))
        if len(kids) > 1:
            raise self.fail(kids[1], "a history has one default transition")
        default: str | tuple[str, ...] | None = None
        action: list[Action[Any]] = []
        if kids:
            tr = kids[0]
            self.check_attrs(tr, ("target", "type"))
            targets = tr.attrs.get("target", "").split()
            if not targets:
                raise self.fail(tr, "a history's default transition needs a target")
            default = targets[0] if len(targets) == 1 else tuple(targets)
            action = self.content(tr)
        return History(sid, default, deep=kind == "deep", action=action or None)

    def initial_attr(self, el: Element) -> str | tuple[str, ...] | None:
        names = el.attrs.get("initial", "").split()
        if not names:
            return None
        return names[0] if len(names) == 1 else tuple(names)

    def initial(self, el: Element, kids: list[Element]) -> str | tuple[str, ...] | None:
        elements = [k for k in kids if k.tag == "initial"]
        attr = self.initial_attr(el)
        if not elements:
            return attr
        if attr is not None or len(elements) > 1:
            raise self.fail(elements[-1], "a state has one initial: the attribute or one <initial> element")
        inner = self.children(elements[0], ("transition",))
        if len(inner) != 1:
            raise self.fail(elements[0], "<initial> holds one <transition> naming its target")
        tr = inner[0]
        self.check_attrs(tr, ("target",))
        if self.content(tr):
            raise self.fail(tr, "executable content on an <initial> transition is outside the subset")
        names = tr.attrs.get("target", "").split()
        if not names:
            raise self.fail(tr, "the <initial> transition needs a target")
        return names[0] if len(names) == 1 else tuple(names)

    def activities(self, el: Element) -> list[Activity]:
        text = el.attrs.get(_cellctl("activities"))
        if text is None:
            return []
        out = []
        rest = _ACTIVITY.sub("", text).strip()
        if rest:
            raise self.fail(el, f"cellctl:activities {text!r}: write 'label(event ...) ...'")
        for label, posts_text in _ACTIVITY.findall(text):
            posts = tuple(posts_text.split())
            found = self.b.activities.get(label)
            if found is None:
                if not self.placeholders:
                    raise self.fail(el, f"activity {label!r} is not bound: the bindings have no activity of that "
                                    "label (activities=)")
                self.unbound.append(f"activity {label}")
                found = _placeholder_activity(label, posts)
            elif set(found.posts) != set(posts):
                raise self.fail(el, f"activity {label!r} posts {sorted(found.posts)} in Python, "
                                f"{sorted(posts)} in the document")
            out.append(found)
        return out

    # -- timers, entry and exit --------------------------------------------------------------

    def entry(self, sid: str, blocks: list[Element]) -> tuple[list[Action[Any]], dict[str, float]]:
        """The entry actions, and the after() timers among them (timer event -> delay)."""
        actions: list[Action[Any]] = []
        timers: dict[str, float] = {}
        for block in blocks:
            self.check_attrs(block, ())
            for el in self.children(block, _EXECUTABLE):
                timer = _TIMER.match(el.attrs.get("event", "")) if el.tag == "send" else None
                if timer is None:
                    actions.extend(self.executable(el))
                    continue
                if timer.group(1) != sid or el.attrs.get("id") != el.attrs["event"]:
                    raise self.fail(el, f"event {el.attrs['event']!r}: names 'after.<state>.<n>' are the after() "
                                    f"timers of state <state>, sent with that id from its own <onentry>")
                self.check_attrs(el, ("event", "id", "delay"))
                if self.children(el, ()):
                    raise self.fail(el, "an after() timer carries no data")
                timers[el.attrs["event"]] = self.delay(el)
        return actions, timers

    def exit(self, sid: str, blocks: list[Element], timers: dict[str, float]) -> list[Action[Any]]:
        actions: list[Action[Any]] = []
        cancelled: set[str] = set()
        for block in blocks:
            self.check_attrs(block, ())
            for el in self.children(block, _EXECUTABLE):
                if el.tag == "cancel" and el.attrs.get("sendid") in timers:
                    cancelled.add(el.attrs["sendid"])
                    continue
                actions.extend(self.executable(el))
        missing = sorted(set(timers) - cancelled)
        if missing:
            line, tag = (blocks[0].line, "onexit") if blocks else self.lines[sid]
            message = (f"state {sid!r}: the after() timer {missing[0]!r} must be cancelled in its <onexit> "
                       "(a timer belongs to its state)")
            raise ScxmlImportError(line, tag, message)
        return actions

    def delay(self, el: Element) -> float:
        text = el.attrs.get("delay", "0s")
        match = _TIME.match(text)
        if match is None:
            raise self.fail(el, f"delay {text!r}: write a duration such as '2.5s' or '500ms'")
        value = float(match.group(1))
        return value / 1000.0 if match.group(2) == "ms" else value

    # -- transitions ---------------------------------------------------------------------------

    def transition(self, el: Element, timers: dict[str, float], root: bool) -> list[Transition]:
        self.check_attrs(el, ("event", "cond", "target", "type"), ("generated",))
        if el.attrs.get(_cellctl("generated")) == "end":
            if not root:
                raise self.fail(el, "cellctl:generated='end' belongs to the root's transition to its end")
            return []  # the export's way of ending the session when our root completes
        kind = el.attrs.get("type", "external")
        if kind not in ("internal", "external"):
            raise self.fail(el, f"type {kind!r}: a transition is 'internal' or 'external'")
        names = el.attrs.get("target", "").split()
        target = None if not names else names[0] if len(names) == 1 else tuple(names)
        guard = self.guard(el, el.attrs["cond"]) if "cond" in el.attrs else None
        actions = self.content(el)
        events = el.attrs["event"].split() if "event" in el.attrs else [None]
        if not events:
            raise self.fail(el, "event='': name the event, or leave the attribute out for an eventless transition")
        out = []
        for event in events:
            if event is not None and event in timers:
                out.append(Transition(None, target, guard, actions, kind == "internal", timers[event]))
            elif event is not None and _TIMER.match(event):
                raise self.fail(el, f"event {event!r}: no after() timer of this state sends it")
            else:
                out.append(Transition(event, target, guard, actions, kind == "internal"))
        return out

    def guard(self, el: Element, cond: str) -> Guard[Any]:
        found = _IN.match(cond)
        if found:
            return In(found.group(2))
        match = _GUARD.match(cond)
        if match is None:
            raise self.fail(el, f"cond {cond!r}: the subset reads In('state') or the name of a guard, not expressions")
        name = match.group(1) or match.group(3) or match.group(4)
        return self.bound(el, "guard", name, self.b.guards)

    def bound(self, el: Element, kind: str, name: str, table: Mapping[str, Callable[..., Any]]) -> Any:
        found = table.get(name)
        if found is not None:
            return found
        if not self.placeholders:
            plural = {"guard": "guards", "action": "actions", "donedata": "donedata"}[kind]
            raise self.fail(el, f"{kind} {name!r} is not bound: the bindings have no {kind} of that name ({plural}=)")
        self.unbound.append(f"{kind} {name}")
        return _Placeholder(kind, name)

    # -- executable content --------------------------------------------------------------------

    def content(self, el: Element) -> list[Action[Any]]:
        out: list[Action[Any]] = []
        for child in self.children(el, _EXECUTABLE):
            out.extend(self.executable(child))
        return out

    def executable(self, el: Element) -> list[Action[Any]]:
        if el.tag == "raise":
            self.check_attrs(el, ("event",))
            self.children(el, ())
            return [self.build(el, lambda: Raise(el.attrs.get("event", "")))]
        if el.tag == "cancel":
            self.check_attrs(el, ("sendid",))
            self.children(el, ())
            if "sendid" not in el.attrs:
                raise self.fail(el, "<cancel> needs a sendid (sendidexpr is an expression: outside the subset)")
            return [self.build(el, lambda: Cancel(el.attrs["sendid"]))]
        if el.tag == "log":
            self.check_attrs(el, ("label",), ("action",))
            self.children(el, ())
            name = el.attrs.get(_cellctl("action"))
            if name is None:
                raise self.fail(el, "a <log> without cellctl:action: name the Python action it stands for "
                                "(<log label=\"x\" cellctl:action=\"x\"/>); a plain log is outside the subset")
            return [self.bound(el, "action", name, self.b.actions)]
        if el.tag == "send":
            return [self.send(el)]
        raise self.fail(el, f"<{el.tag}> is outside the structural subset (no data model or scripts)")

    def send(self, el: Element) -> Send:
        self.check_attrs(el, ("event", "delay", "id", "type", "target"), ("data",))
        if el.attrs.get("type", _SCXML_PROCESSOR) not in (_SCXML_PROCESSOR, "scxml"):
            raise self.fail(el, f"type {el.attrs['type']!r}: only sends to the chart itself are read")
        if el.attrs.get("target", "#_scxml_session") not in ("#_scxml_session",):
            raise self.fail(el, f"target {el.attrs['target']!r}: only sends to the chart itself are read "
                            "(leave target out)")
        if _cellctl("data") in el.attrs:
            raise self.fail(el, f"cellctl:data {el.attrs[_cellctl('data')]!r}: Python data SCXML could not hold; "
                            "send it from a bound action instead")
        if "event" not in el.attrs:
            raise self.fail(el, "<send> needs an event (eventexpr is an expression: outside the subset)")
        data = self.content_value(el, "send") if self.children(el, ("content",)) else None
        delay = self.delay(el)
        made = self.build(el, lambda: Send(el.attrs["event"], data, delay, el.attrs.get("id")))
        assert isinstance(made, Send)
        return made

    def content_value(self, el: Element, what: str) -> Any:
        kids = self.children(el, ("content",))
        if len(kids) != 1:
            raise self.fail(el, f"<{what}> holds one <content> (no <param>: it needs a data model)")
        content = kids[0]
        self.check_attrs(content, ("expr",))
        self.children(content, ())
        if "expr" not in content.attrs:
            return content.text.strip()
        try:
            return parse_literal(content.attrs["expr"])
        except LiteralSyntaxError as exc:
            raise self.fail(content, f"expr is not a literal: {exc}") from None

    def build(self, el: Element, make: Callable[[], Action[Any]]) -> Action[Any]:
        try:
            return make()
        except ValueError as exc:
            raise self.fail(el, str(exc)) from None


_EXECUTABLE = ("raise", "send", "cancel", "log", "script", "assign", "if", "elseif", "else", "foreach")


def _first_state(children: list[State | History], el: Element, imp: _Importer) -> str:
    """SCXML 3.3: without an initial, the first child state in document order."""
    for child in children:
        if not isinstance(child, History):
            return child.id
    raise imp.fail(el, "a state with only history children has no initial state")

