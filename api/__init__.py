"""Audience Workbench serving API: the current run's audiences, answered from memory."""

__version__ = "1.0.0"
