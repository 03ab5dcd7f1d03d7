"""`syncd report`: 40 leads with hand-written histories give the hand-computed funnel.

Calendar: UTC, Monday to Friday, 09:00-17:00. Period 2026-09-01 .. 2026-10-01, report time
Monday 2026-10-12 12:00 UTC. Monday 2026-09-07 is day 0 ("Mon" below); SLA 16 business hours.

Groups (every transition inside the period):

  A a00-a09 salesforce, owner ann, source web:
      New Mon 09:00 -> MQL Mon 10:00 -> SAL Mon 12:00 -> SQL Tue 12:00 -> Converted Fri 12:00
      first touch = next transition (SQL): Mon 12-17 (5 h) + Tue 9-12 (3 h) = 8 business h
  B b00-b09 hubspot, owner bob, source event:
      New Mon 09:00 -> MQL Tue 09:00 -> SAL Fri 16:00 -> SQL Wed(+1 wk) 10:00
      first touch: Fri 1 h + Mon 8 + Tue 8 + Wed 1 = 18 business h > 16: breach
  C c00-c09 salesforce, owner ann, source web:
      New Mon 09:00 -> MQL Mon 11:00 -> Unqualified Tue 11:00 (rejected; CRM value
      "Closed - Not Converted", mapped by status_values)
  D d0-d4 hubspot, owner dan, source partner:
      New Mon 09:00 -> SAL Mon 13:00 (MQL skipped), nothing since: open breach aged
      Sep 7 13-17 (4) + Sep 8-11 (32) + Sep 14 .. Oct 9 (4 weeks, 160) + Oct 12 9-12 (3) = 199 h
  E e0-e4 salesforce, owner eve, source web:
      New Mon 09:00 -> MQL Mon 10:00 -> SAL Mon 14:00 -> MQL Wed 14:00 (regression),
      last activity Mon 15:00: first touch 1 business h

Funnel, any-order (a lead counted once per stage it entered):
  New 40; MQL A+B+C+E = 35; SAL A+B+D+E = 30; SQL A+B = 20; Converted A = 10
  next step: 35/40 = .875, 30/35 = .857, 20/30 = .667, 10/20 = .5
Funnel, in-order (D never passed MQL, so it stops counting after New):
  New 40; MQL 35; SAL A+B+E = 25; SQL 20; Converted 10
  next step: .875, 25/35 = .714, 20/25 = .8, .5; cumulative SAL 25/40 = .625
Skipped: D's New -> SAL, 5. Regressions: E's SAL -> MQL, 5.
Drop-off: New 0; MQL (35, reached SAL or later: 25) 10/35; SAL (30, later: A+B 20) 10/30;
  SQL (20, later: A 10) .5
Acceptance, accepted_over_decided: SAL entries 30 / (30 + C's 10 rejections) = .75 < .9: flagged
Acceptance, within_sla_over_mqls: MQL entries A10 + B10 + C10 + E10 (E twice) = 40; reaching SAL
  within 16 business h: A (2 h) 10 + E (4 h) 5 = 15 -> .375 (B waited 31 h)
SLA: 30 SAL entries, all decided; breaches B 10 + D 5 = 15 -> .5; first touch values
  1 x5, 8 x10, 18 x10: p50 rank 13 = 8 h. Open breaches: D's 5, owner dan, 199 h.
Time in stage (days, nearest rank):
  New: 1/24 x15 (A, E), 2/24 x10 (C), 4/24 x5 (D), 1 x10 (B): n 40, p50 rank 20 = .083,
       p75 rank 30 = .167, p90 rank 36 = 1
  MQL: 2/24 x10 (A), 4/24 x5 (E, first entry; the second has no next), 1 x10 (C),
       3 d 7 h = 3.292 x10 (B): n 35, p50 rank 18 = 1, p75 rank 27 = 3.292, p90 rank 32 = 3.292
  SAL: 1 x10 (A), 2 x5 (E), 4.75 x10 (B), D still there: n 25, p50 rank 13 = 2,
       p75 rank 19 = 4.75, p90 rank 23 = 4.75
  SQL: 3 x10 (A; B still there): n 10, all 3. Converted: n 0.
SAL to close: A's Mon 12:00 -> Fri 12:00 = 4 d, n 10.
Stale (unchanged > 30 d at Oct 12): D in SAL since Sep 7 (35 d) 5; E in MQL since Sep 9
  (33 d) 5; B in SQL since Sep 16 (26 d) not stale; Converted is the last stage, never stale.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from syncd.cli import app as cli
from syncd.state import LeadRow, StateStore, StatusHistoryRow

runner = CliRunner()
MON = datetime(2026, 9, 7, tzinfo=UTC)
PERIOD = ("--since", "2026-09-01", "--until", "2026-10-01", "--at", "2026-10-12T12:00:00Z")


def _at(day: int, hour: int) -> datetime:
    return MON + timedelta(days=day, hours=hour)


# (prefix, count, crm, owner, source, last activity, [(status, day, hour), ...])
GROUPS = [
    ("a", 10, "salesforce", "ann", "web", None,
     [("New", 0, 9), ("MQL", 0, 10), ("SAL", 0, 12), ("SQL", 1, 12), ("Converted", 4, 12)]),
    ("b", 10, "hubspot", "bob", "event", None,
     [("New", 0, 9), ("MQL", 1, 9), ("SAL", 4, 16), ("SQL", 9, 10)]),
    ("c", 10, "salesforce", "ann", "web", None,
     [("New", 0, 9), ("MQL", 0, 11), ("Closed - Not Converted", 1, 11)]),
    ("d", 5, "hubspot", "dan", "partner", None, [("New", 0, 9), ("SAL", 0, 13)]),
    ("e", 5, "salesforce", "eve", "web", _at(0, 15),
     [("New", 0, 9), ("MQL", 0, 10), ("SAL", 0, 14), ("MQL", 2, 14)]),
]  # fmt: skip


def _seed(url: str) -> None:
    store = StateStore(url)
    now = datetime(2026, 10, 12, tzinfo=UTC)
    with Session(store.engine) as session:
        for prefix, count, crm, owner, source, activity, steps in GROUPS:
            for n in range(count):
                lead_id = f"{prefix}{n:02d}"
                fields: dict[str, object] = {"owner": owner, "lead_source": source}
                if activity is not None:
                    fields["last_activity_at"] = activity.isoformat()
                session.add(
                    LeadRow(
                        crm=crm,
                        lead_id=lead_id,
                        modified_at=now,
                        fields=fields,
                        status=steps[-1][0],
                        first_seen_at=now,
                        pulled_at=now,
                    )
                )
                previous: str | None = None
                for status, day, hour in steps:
                    session.add(
                        StatusHistoryRow(
                            crm=crm,
                            lead_id=lead_id,
                            from_value=previous,
                            to_value=status,
                            at=_at(day, hour),
                            actor="person",
                            source="pulled",
                        )
                    )
                    previous = status
        session.commit()
    store.close()


def seeded_config(tmp_path: Path) -> Path:
    """A config whose state store holds the 40-lead ledger of :func:`_seed`."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    _seed(url)
    path = tmp_path / "syncd.yaml"
    path.write_text(
        f"state: {{url: '{url}'}}\n"
        "salesforce: {status_values: {Unqualified: 'Closed - Not Converted'}}\n"
        "hubspot: {}\n"
    )
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return seeded_config(tmp_path)


def _report(config: Path, *args: str) -> str:
    result = runner.invoke(cli, ["report", "--config", str(config), *PERIOD, *args])
    assert result.exit_code == 0, result.output
    return result.output


def _json(config: Path, *args: str) -> dict:  # type: ignore[type-arg]
    return json.loads(_report(config, "--json", *args))  # type: ignore[no-any-return]


def test_funnel_counts_and_conversion_match_the_hand_computed_numbers(config: Path) -> None:
    total = _json(config)["groups"][0]
    stages = {s["stage"]: s for s in total["stages"]}
    assert [s["stage"] for s in total["stages"]] == ["New", "MQL", "SAL", "SQL", "Converted"]
    assert [stages[s]["any_order"] for s in stages] == [40, 35, 30, 20, 10]
    assert [stages[s]["in_order"] for s in stages] == [40, 35, 25, 20, 10]
    assert [stages[s]["next_step_any"] for s in stages][1:] == pytest.approx(
        [0.875, 30 / 35, 20 / 30, 0.5]
    )
    assert [stages[s]["next_step_in_order"] for s in stages][1:] == pytest.approx(
        [0.875, 25 / 35, 0.8, 0.5]
    )
    assert stages["SAL"]["cumulative_in_order"] == pytest.approx(0.625)
    assert stages["SAL"]["cumulative_any"] == pytest.approx(0.75)
    assert [stages[s]["drop_off"] for s in stages] == pytest.approx(
        [0.0, 10 / 35, 10 / 30, 0.5, None]
    )
    assert (total["skipped"], total["regressions"]) == (5, 5)
    assert [stages[s]["stale"] for s in stages] == [0, 5, 5, 0, 0]


def test_acceptance_rate_is_flagged_under_target_in_both_definitions(
    config: Path, tmp_path: Path
) -> None:
    total = _json(config)["groups"][0]
    assert (total["acceptance_numerator"], total["acceptance_denominator"]) == (30, 40)
    assert total["acceptance_rate"] == pytest.approx(0.75)
    assert total["acceptance_below_target"] is True
    text = config.read_text() + "report: {acceptance: within_sla_over_mqls}\n"
    config.write_text(text)
    other = _json(config)["groups"][0]
    assert (other["acceptance_numerator"], other["acceptance_denominator"]) == (15, 40)
    assert other["acceptance"] == "within_sla_over_mqls"


@pytest.mark.parametrize(
    ("report_settings", "figure", "expected"),
    [
        # B waited 31 business hours for SAL: inside 32, so 10 more accepted than with 16.
        (
            "{acceptance: within_sla_over_mqls, accept_within_business_hours: 32}",
            "acceptance_numerator",
            25,
        ),
        # Only A (2 h) is accepted within 3 business hours; E took 4.
        (
            "{acceptance: within_sla_over_mqls, accept_within_business_hours: 3}",
            "acceptance_numerator",
            10,
        ),
        # B's 18-hour first touch is inside a 20-hour SLA; D's open 199 hours is not.
        ("{sla_business_hours: 20}", "sla_breaches", 5),
        # 0.75 accepted is not under a 0.7 target.
        ("{acceptance_target: 0.7}", "acceptance_below_target", False),
        # D (35 days in SAL) is stale after 34 days; E (33 days in MQL) is not.
        ("{stale_after: 34d}", "stale", [0, 0, 5, 0, 0]),
    ],
    ids=["accept_within_32h", "accept_within_3h", "sla_20h", "target_0.7", "stale_after_34d"],
)
def test_each_report_setting_changes_the_figure_it_names_when_set_in_the_config(
    config: Path, report_settings: str, figure: str, expected: object
) -> None:
    config.write_text(config.read_text() + f"report: {report_settings}\n")
    total = _json(config)["groups"][0]
    if figure == "stale":
        assert [stage["stale"] for stage in total["stages"]] == expected
    else:
        assert total[figure] == expected


def test_sal_follow_up_is_measured_in_business_hours_with_open_breaches(config: Path) -> None:
    total = _json(config)["groups"][0]
    assert (total["sal_entries"], total["sla_decided"], total["sla_breaches"]) == (30, 30, 15)
    assert total["sla_breach_rate"] == pytest.approx(0.5)
    assert total["first_touch_p50_hours"] == pytest.approx(8)
    opened = total["open_breaches"]
    assert sorted(b["lead_id"] for b in opened) == [f"d{n:02d}" for n in range(5)]
    assert {(b["owner"], b["age_business_hours"]) for b in opened} == {("dan", 199)}
    assert total["breaches_by_day"] == {"2026-09-07": 5, "2026-09-11": 10}


def test_time_in_stage_percentiles_and_sal_to_close(config: Path) -> None:
    stages = {s["stage"]: s for s in _json(config)["groups"][0]["stages"]}
    got = {k: (v["n_durations"], v["p50_days"], v["p75_days"], v["p90_days"]) for k, v in
           stages.items()}  # fmt: skip
    assert got == {
        "New": (40, 0.083, 0.167, 1.0),
        "MQL": (35, 1.0, 3.292, 3.292),
        "SAL": (25, 2.0, 4.75, 4.75),
        "SQL": (10, 3.0, 3.0, 3.0),
        "Converted": (0, None, None, None),
    }
    total = _json(config)["groups"][0]
    assert (total["sal_to_close_n"], total["sal_to_close_p50_days"]) == (10, 4.0)


def test_by_owner_splits_the_leads_and_the_cohort_follows_first_stage_entrants(
    config: Path,
) -> None:
    groups = {g["group"]: g for g in _json(config, "--by", "owner")["groups"]}
    assert set(groups) == {"all", "ann", "bob", "dan", "eve"}
    ann = {s["stage"]: s["any_order"] for s in groups["ann"]["stages"]}
    assert ann == {"New": 20, "MQL": 20, "SAL": 10, "SQL": 10, "Converted": 10}
    assert groups["dan"]["sla_breaches"] == 5 and groups["ann"]["sla_breaches"] == 0
    # A cohort of a week with nobody entering New: empty; of September: everyone.
    empty = runner.invoke(
        cli,
        ["report", "--config", str(config), "--cohort", "--since", "2026-09-20",
         "--until", "2026-09-27", "--at", "2026-10-12T12:00:00Z", "--json"],
    )  # fmt: skip
    assert json.loads(empty.output)["groups"][0]["stages"][0]["any_order"] == 0
    cohort = _json(config, "--cohort")["groups"][0]
    assert [s["any_order"] for s in cohort["stages"]] == [40, 35, 30, 20, 10]


def test_table_and_csv_carry_the_same_numbers_as_json(config: Path) -> None:
    data = _json(config)["groups"][0]
    table = _report(config)
    assert "acceptance rate (accepted_over_decided): 75.0 % (30/40)" in table
    assert "BELOW TARGET" in table
    assert "15 breaches of 30 decided (50.0 %)" in table
    assert "in_order:" in table and "HubSpot" in table  # the definitions are printed
    for stage in data["stages"]:
        line = next(x for x in table.splitlines() if f"│ {stage['stage']} " in x)
        cells = [c.strip() for c in line.split("│")[1:-1]]
        assert cells[1] == str(stage["any_order"]) and cells[4] == str(stage["in_order"])
    rows = list(csv.DictReader(io.StringIO(_report(config, "--csv"))))
    assert len(rows) == 5
    for row, stage in zip(rows, data["stages"], strict=True):
        assert row["stage"] == stage["stage"]
        assert int(row["any_order"]) == stage["any_order"]
        assert int(row["in_order"]) == stage["in_order"]
        assert row["p50_days"] == ("" if stage["p50_days"] is None else str(stage["p50_days"]))
        assert float(row["acceptance_rate"]) == data["acceptance_rate"]


def test_bad_options_say_what_is_wrong_without_a_traceback(config: Path) -> None:
    result = runner.invoke(cli, ["report", "--config", str(config), "--by", "region"])
    assert result.exit_code == 2 and "--by 'region'" in result.output
    result = runner.invoke(cli, ["report", "--config", str(config), "--since", "sept"])
    assert result.exit_code == 2 and "--since 'sept'" in result.output
    assert "Traceback" not in result.output


def _png_colours(png: bytes) -> int:
    """Distinct RGB colours of an 8-bit RGB/RGBA non-interlaced PNG (Chromium's output)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, data, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            channels = {2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            data += body
        pos += 12 + length
    raw = zlib.decompress(data)
    stride = width * channels
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        kind, cur = line[0], bytearray(line[1:])
        for i in range(stride):
            left = cur[i - channels] if i >= channels else 0
            up = previous[i]
            ul = previous[i - channels] if i >= channels else 0
            if kind == 1:
                cur[i] = (cur[i] + left) & 255
            elif kind == 2:
                cur[i] = (cur[i] + up) & 255
            elif kind == 3:
                cur[i] = (cur[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else ul
                cur[i] = (cur[i] + pred) & 255
        if y % 4 == 0:  # every fourth line is plenty to count colours
            for x in range(0, stride, channels * 2):
                colours.add(bytes(cur[x : x + 3]))
        previous = cur
    return len(colours)


def test_html_report_renders_its_charts_in_headless_chromium(config: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.fail("chromium is missing: run tests/ensure-tools.sh (Debian's chromium)")
    page = tmp_path / "report.html"
    _report(config, "--html", str(page))
    text = page.read_text()
    assert "<script" not in text and "http://" not in text and "https://" not in text
    base = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000",
    ]  # fmt: skip
    dom = subprocess.run(
        [*base, "--dump-dom", page.as_uri()],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    for chart in ("chart funnel", "chart durations", "chart breaches"):
        assert f'class="{chart}"' in dom
    assert dom.count('class="bar"') >= 10  # 5 stages x 2 semantics, plus breach days
    assert 'class="box"' in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", page.as_uri()],
        check=False,
        capture_output=True,
        timeout=120,
    )
    assert shot.exists(), "chromium wrote no screenshot"
    assert _png_colours(shot.read_bytes()) > 8  # blank pages have one or two colours


def test_the_ledger_is_read_in_bounded_chunks_with_the_same_result(store_url: str) -> None:
    """Keyset pages of 7 rows split leads across pages; SQLite and PostgreSQL agree."""
    from syncd.report import ReportOptions, compute
    from syncd.report_read import read_inputs

    _seed(store_url)
    store = StateStore(store_url)
    maps = {"salesforce": {"Closed - Not Converted": "Unqualified"}}
    options = ReportOptions(
        since=datetime(2026, 9, 1, tzinfo=UTC),
        until=datetime(2026, 10, 1, tzinfo=UTC),
        now=datetime(2026, 10, 12, 12, tzinfo=UTC),
    )
    try:
        whole = list(read_inputs(store.engine, maps))
        paged = list(read_inputs(store.engine, maps, chunk=7))
    finally:
        store.close()
    assert len(whole) == 40 and paged == whole
    assert sum(len(history) for _, history in paged) == 10 * 5 + 10 * 4 + 10 * 3 + 5 * 2 + 5 * 4
    report = compute(paged, options)[0]
    assert [s.any_order for s in report.stages] == [40, 35, 30, 20, 10]
    assert report.acceptance_rate == 0.75 and len(report.open_breaches) == 5


def test_an_empty_scope_says_why_it_is_empty(config: Path) -> None:
    result = runner.invoke(
        cli, ["report", "--config", str(config), "--since", "2025-01-01", "--until", "2025-02-01"]
    )
    assert result.exit_code == 0 and "no status transitions in this scope" in result.output
    assert "no status transitions" not in _report(config)
