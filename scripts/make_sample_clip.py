"""Thin wrapper: regenerate the bundled sample clip (see facecam/sample_clip.py)."""

import sys

from facecam.sample_clip import main

if __name__ == "__main__":
    sys.exit(main())
