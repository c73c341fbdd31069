"""Perception: pure functions over numpy arrays (point clouds, occupancy, SDF, patches)."""
