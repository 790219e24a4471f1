"""``python -m agent``: the same command line as ``endpoint-agent``.

``freeze_support()`` comes first and the command line is imported after it, so a scan worker started
by a frozen (PyInstaller) binary goes straight to its worker code without loading the CLI.
"""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from agent.cli import run

    run()
