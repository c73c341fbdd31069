"""Statecharts: the engine (`statecharts.engine`) and the charts built on it."""
