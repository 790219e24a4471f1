"""Privacy governance: declared purposes and legal bases, the consent ledger, the egress gate."""

from agent.governance.consent import ConsentLedger, Entry, State, Verification, Withdrawal
from agent.governance.gate import Decision, EgressGate
from agent.governance.purposes import (
    WIRE_SCHEMAS,
    Controller,
    Purpose,
    Purposes,
    Recipient,
    load_purposes,
    purposes_path,
    render_notice,
)

__all__ = [
    "WIRE_SCHEMAS",
    "ConsentLedger",
    "Controller",
    "Decision",
    "EgressGate",
    "Entry",
    "Purpose",
    "Purposes",
    "Recipient",
    "State",
    "Verification",
    "Withdrawal",
    "load_purposes",
    "purposes_path",
    "render_notice",
]
