"""``python -m agent``: the same command line as ``endpoint-agent``."""

import multiprocessing
import sys

from agent.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
