"""The command line: `python -m pipeline …` (parser.py defines it, commands.py carries it out)."""
from pipeline.cli.parser import main

__all__ = ["main"]
