"""Privacy governance: declared purposes and legal bases, the consent ledger, the egress gate."""

from agent.governance.consent import ConsentLedger, Entry, State, Verification, Withdrawal
from agent.governance.gate import Decision, EgressGate
from agent.governance.history import History, HistoryRow, record_outcomes, worth_keeping
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
from agent.governance.quarantine import Quarantine, QuarantineAction, QuarantineError
from agent.governance.retention import PurgeReport, Retention, purge
from agent.governance.rights import export, forget, retry_pending_erasures
from agent.governance.vault import DataKey, UnsealError

__all__ = [
    "WIRE_SCHEMAS",
    "ConsentLedger",
    "Controller",
    "DataKey",
    "Decision",
    "EgressGate",
    "Entry",
    "History",
    "HistoryRow",
    "PurgeReport",
    "Purpose",
    "Purposes",
    "Quarantine",
    "QuarantineAction",
    "QuarantineError",
    "Recipient",
    "Retention",
    "State",
    "UnsealError",
    "Verification",
    "Withdrawal",
    "export",
    "forget",
    "load_purposes",
    "purge",
    "purposes_path",
    "record_outcomes",
    "render_notice",
    "retry_pending_erasures",
    "worth_keeping",
]
