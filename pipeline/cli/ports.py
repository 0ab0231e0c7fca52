"""`make up`'s first step: are the two ports free? A busy one gets one line: which, and how to pick another.

    python -m pipeline.cli.ports APP_PORT=8501 API_PORT=8000
"""
from __future__ import annotations

import socket
import sys

HOST = "127.0.0.1"  # where the Procfile's processes listen


def is_busy(port: int, host: str = HOST) -> bool:
    """True when something already listens on host:port (SO_REUSEADDR, as servers bind: a port that is
    only in TIME_WAIT after a previous `make up` counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def next_free(port: int, taken: set[int]) -> int:
    """The first free port above `port` that the other setting does not use either."""
    candidate = port + 1
    while candidate in taken or is_busy(candidate):  # a few probes at most
        candidate += 1
    return candidate


def problems(settings: dict[str, str]) -> list[str]:
    """One line per setting that cannot be used: not a port number, or a port something else holds."""
    lines, taken = [], set()
    for name, value in settings.items():
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            lines.append(f"{name}={value!r} is not a port number; give one from 1024 to 65535, "
                         f"e.g. `make up {name}=8600`")
            continue
        if int(value) in taken:
            lines.append(f"{name}={value} is the port of another setting; give each its own")
            continue
        taken.add(int(value))
        if is_busy(int(value)):
            lines.append(f"port {value} ({name}) is busy: another program listens on it; stop it, or choose "
                         f"another port: make up {name}={next_free(int(value), taken)}")
    return lines


def main(argv: list[str]) -> int:
    settings = dict(item.partition("=")[::2] for item in argv)
    found = problems(settings)
    for line in found:
        print(f"error: {line}", file=sys.stderr)
    return 2 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
