"""Planning: bin choice, placement, affordances, primitives, suction candidates, retries."""

from .stow import StowStep, stow_primitives
from .sweep import KnownItem, SweepPlan, SweepReason, plan_sweep

__all__ = ["KnownItem", "StowStep", "SweepPlan", "SweepReason", "plan_sweep", "stow_primitives"]
