"""Georeferencing: pixel <-> CRS <-> WGS84, ground sampling distance, areas, MGRS."""
