"""F1, A1, A7: one rule decides which flow versions may be saved, for both services that
read `flow-definitions`; and the wire contracts are data that load no mail code."""

from __future__ import annotations

import subprocess
import sys

from services.alert_dispatcher import handlers as dispatcher
from services.flow_executor import handlers as executor
from shared.domain import flow_rules
from shared.domain.flow_rules import flow_problems
from tests.unit.flow_executor.flows import alert, flow


def _cycle():
    return flow(
        [
            {"id": "wait", "type": "delay", "seconds": 60, "next": "alert"},
            alert(nxt="wait"),
        ]
    )


def test_f1_a1_a_version_with_a_cycle_is_rejected_by_the_shared_rule() -> None:
    assert flow_problems(_cycle()) == ["step 'alert': going to 'wait' makes a cycle"]


def test_f1_a1_dispatcher_and_executor_validate_with_the_same_rule() -> None:
    """The dispatcher refuses what the executor refuses (a cycle included), so it never
    mails confirmations for a version that never runs."""
    assert dispatcher.flow_problems is flow_rules.flow_problems
    assert executor.flow_problems is flow_rules.flow_problems


def test_f1_a1_graph_and_alert_problems_are_reported_together() -> None:
    problems = flow_problems(
        flow([alert(recipients=[], nxt="missing"), {"id": "alert", "type": "delay", "seconds": 1}])
    )
    assert "step 'alert': duplicate step id" in problems
    assert "step 'alert': next step 'missing' does not exist" in problems
    assert any("needs 1 to 5 recipients" in p for p in problems)


def test_a1_a7_a_valid_alert_flow_has_no_problems() -> None:
    assert flow_problems(flow([alert()])) == []


def test_importing_the_contracts_loads_no_mail_or_template_code() -> None:
    code = (
        "import shared.contracts, sys;"
        " assert 'aiosmtplib' not in sys.modules, 'aiosmtplib';"
        " assert 'jinja2' not in sys.modules, 'jinja2'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_i1_spellings_of_one_recipient_are_one_recipient() -> None:
    """Six spellings of one address are one recipient (I1), not "more than five"."""
    import unicodedata

    from shared.domain.flow_rules import normalise_recipients

    spellings = [
        "Lead@Bücher.example",
        "lead@xn--bcher-kva.example",
        " LEAD@BÜCHER.EXAMPLE ",
        unicodedata.normalize("NFD", "lead@bücher.example"),
        "lEaD@bücher.example",
        "lead@BÜCHER.example",
    ]
    recipients, errors = normalise_recipients(spellings)
    assert errors == [] and recipients == ["lead@bücher.example"]
