"""Fault profiles for the simulated cell: how often each kind of trouble happens.

Each rate is a probability per opportunity (per motion, per arrival, per attach, ...), drawn from the
cell's seeded generator, so a profile and a seed give the same faults every run.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["PROFILES", "FaultProfileName", "FaultRates", "profile"]


class FaultRates(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    plc_disconnect: float = Field(0.0, ge=0.0, le=1.0, description="per arrival/order: the PLC link drops a while")
    modbus_timeout: float = Field(0.0, ge=0.0, le=1.0, description="per motion: the controller stops answering")
    robot_fault: float = Field(0.0, ge=0.0, le=1.0, description="per motion: the controller reports a fault")
    ft_packet_loss: float = Field(0.0, ge=0.0, le=0.5, description="fraction of F/T packets lost")
    ft_dropout: float = Field(0.0, ge=0.0, le=1.0, description="per guarded motion: the F/T stream stops")
    suction_leak: float = Field(0.0, ge=0.0, le=1.0, description="per attach/extract: the cup leaks")
    item_slip: float = Field(0.0, ge=0.0, le=1.0, description="per grasp/eject/extract: the item slips")
    unexpected_contact: float = Field(0.0, ge=0.0, le=1.0, description="per guarded motion: an unseen obstacle")
    frame_stall: float = Field(0.0, ge=0.0, le=1.0, description="per watched motion: depth frames stop")


PROFILES: dict[str, FaultRates] = {
    "none": FaultRates(),
    "typical": FaultRates(
        plc_disconnect=0.01, modbus_timeout=0.002, robot_fault=0.002, ft_packet_loss=0.001, ft_dropout=0.002,
        suction_leak=0.03, item_slip=0.02, unexpected_contact=0.02, frame_stall=0.01,
    ),
    "harsh": FaultRates(
        plc_disconnect=0.08, modbus_timeout=0.03, robot_fault=0.02, ft_packet_loss=0.02, ft_dropout=0.03,
        suction_leak=0.15, item_slip=0.1, unexpected_contact=0.12, frame_stall=0.08,
    ),
}


def profile(name: str) -> FaultRates:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown fault profile {name!r}; known: {', '.join(PROFILES)}") from None


def _known(name: str) -> str:
    profile(name)
    return name


# A configuration field naming a profile (validated: the error lists the known names).
FaultProfileName = Annotated[str, AfterValidator(_known)]
