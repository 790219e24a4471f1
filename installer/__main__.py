"""``python -m installer`` and the frozen ``endpoint-agent-setup``: the setup command line.

``freeze_support()`` comes first, as in ``agent/__main__.py``, so that a frozen binary started as a
multiprocessing child goes straight to the child's code.
"""

import multiprocessing
import sys


def main() -> int:
    """The console-script entry point (``endpoint-agent-setup``)."""
    from installer.cli import main as cli_main  # noqa: PLC0415 - after freeze_support

    return cli_main()


if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
