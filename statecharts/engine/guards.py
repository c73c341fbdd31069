"""Declarative guards: conditions the exports can write in a standard form.

A guard is any `fn(ctx, event) -> bool`; a plain Python function is opaque to other tools (see
`export`). `In(state_id)` is SCXML's own `In()` predicate (5.9.1): true while that state is
active. It behaves exactly like `lambda ctx, event: ctx.is_active(state_id)`, but the SCXML
export writes it as `cond="In('state_id')"`, which any SCXML interpreter evaluates itself, and
the Mermaid export labels it `[In(state_id)]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import ActionContext
    from .model import Event


@dataclass(frozen=True, slots=True)
class In:
    """A guard: true while the state `state` is active (SCXML `In('state')`)."""

    state: str

    @property
    def __name__(self) -> str:  # what traces and exports call it (`callable_name`)
        return f"In({self.state})"

    def __call__(self, ctx: ActionContext, event: Event) -> bool:
        return ctx.is_active(self.state)
