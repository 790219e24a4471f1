"""endpoint-agent-setup: the installer (neutral age gate, per-purpose choices, service install, uninstall).

``python -m installer`` and the ``endpoint-agent-setup`` binary run :func:`installer.cli.main`.
"""

from installer.agegate import AgePolicy, RetryBlock, age_in_years, parse_birth_date
from installer.answers import Answers, load_answers
from installer.layout import Layout, make_layout
from installer.transaction import InstallError, Transaction
from installer.units import launchd_plist, systemd_unit, windows_service_script

__all__ = [
    "AgePolicy",
    "Answers",
    "InstallError",
    "Layout",
    "RetryBlock",
    "Transaction",
    "age_in_years",
    "launchd_plist",
    "load_answers",
    "make_layout",
    "parse_birth_date",
    "systemd_unit",
    "windows_service_script",
]
