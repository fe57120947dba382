"""Thin wrapper: a multi-face test clip panned over a group photo (see facecam/group_clip.py)."""

import sys

from facecam.group_clip import main

if __name__ == "__main__":
    sys.exit(main())
