"""Simulated protocol peers (OPC UA PLC, Modbus, F/T, camera) that tests and the simulation drive."""
