"""Thin wrapper: the facecam-bench command (see facecam/realtime/bench_cli.py)."""

import sys

from facecam.realtime.bench_cli import main

if __name__ == "__main__":
    sys.exit(main())
