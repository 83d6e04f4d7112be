"""The finding detail's text: the severity's source and every rating, the deciding one first."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console

from appliance.console.views import FindingRow
from tests.tui.fakes import finding
from tui.screens.detail import finding_text


def render(row: FindingRow) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(finding_text(row))
    return console.export_text()


def test_ratings_are_listed_in_the_order_kept_with_scores_when_given() -> None:
    row = replace(
        finding(1),
        severity_source="nvd",
        ratings=(
            ("nvd", "nvd@nist.gov for CVE-2026-10001", "high", 7.5),
            ("nvd", "nvd@nist.gov for CVE-2026-10001", "medium", 5.0),
            ("cve-adp", "CISA-ADP for CVE-2026-10001", "low", None),
        ),
    )
    text = render(row)
    assert "from nvd: CVSS:3.1 from DSA-TEST" in text
    first = text.index("nvd high 7.5 (nvd@nist.gov for CVE-2026-10001)")
    second = text.index("nvd medium 5.0 (nvd@nist.gov for CVE-2026-10001)")
    third = text.index("cve-adp low (CISA-ADP for CVE-2026-10001)")
    assert first < second < third
    assert "Ratings" not in render(finding(1))


def test_a_go_call_chain_is_shown_with_its_state() -> None:
    """A Go finding's symbol-level decision (the linked function and the call chain from
    main) is the evidence's last line, not the entry trace's package-level wording."""
    chain = (
        "/usr/bin/hello links html/template.Template.Execute; call chain: main.main -> "
        "html/template.Template.Execute"
    )
    row = replace(
        finding(1),
        purl="pkg:golang/stdlib@v1.19.8",
        reachability="reachable",
        reachability_note=chain,
    )
    text = " ".join(render(row).split())
    assert f"{chain} (reachable: a chain from the entrypoint reaches the vulnerable code" in text
    assert "an entrypoint of the image loads it" not in text
