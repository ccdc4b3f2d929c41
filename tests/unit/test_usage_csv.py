"""The /usage export file: moderator-typed text never becomes a spreadsheet formula, numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest

from cogs.usage import CSV_COLUMNS, ledger_csv, spreadsheet_safe

# What OWASP's CSV injection guidance lists, and the forms some spreadsheets read the same way.
FORMULAS = [
    '=HYPERLINK("http://evil","click")',
    "=1+1",
    "+1+1",
    "-1+1",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    "\tanything",
    "\ranything",
    "＝HYPERLINK(\"http://evil\")",  # full-width equals sign
    "＋1",                           # full-width plus
    "－1+1",                         # full-width hyphen-minus
    "＠SUM(A1)",                     # full-width at
    "﹦1+1",                         # small equals sign
    "  =1+1",                        # spaces first
    "\u3000=1+1",                    # an ideographic space first
    "-",
    "=",
]


@pytest.mark.parametrize("cell", FORMULAS)
def test_a_cell_a_spreadsheet_would_run_gets_a_leading_quote(cell):
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize("number", ["-5", "5", "1.5", "-0.25", "+3", "0", "1000000"])
def test_plain_numbers_stay_numbers(number):
    assert spreadsheet_safe(number) == number


@pytest.mark.parametrize("text", ["welcome, friend", "a = b", "x-y", "", "2026-01-02T03:04:05+00:00",
                                  "granted by a moderator", "e@mail", "5 credits"])
def test_ordinary_text_is_unchanged(text):
    assert spreadsheet_safe(text) == text


def test_a_cell_that_already_starts_with_a_quote_gets_another_so_one_can_always_be_dropped():
    assert spreadsheet_safe("'tis the season") == "''tis the season"
    assert spreadsheet_safe("'=1+1") == "''=1+1"
    for original in [*FORMULAS, "'tis", "''", "plain", "-5"]:
        exported = spreadsheet_safe(original)
        recovered = exported[1:] if exported.startswith("'") else exported
        assert recovered == original


def ledger_row(row_id: int, amount: int, reason: str | None, kind: str = "grant") -> dict[str, object]:
    return {"id": row_id, "created_at": 1_767_225_600_000, "user_id": 5005, "job_id": None,
            "job_kind": None, "kind": kind, "amount": amount, "reason": reason, "actor_id": 6006}


def test_the_ledger_file_neutralises_reasons_keeps_credits_and_parses_back():
    rows = [
        ledger_row(1, 1_500, '=HYPERLINK("http://evil","click")'),
        ledger_row(2, -5_000, "-took back, \"oops\""),
        ledger_row(3, -2_500, None, kind="reserve"),
        ledger_row(4, 2_000, "＠cmd"),
    ]
    parsed = list(csv.reader(io.StringIO(ledger_csv(rows).decode("utf-8"))))
    assert parsed[0] == list(CSV_COLUMNS)
    body = [dict(zip(CSV_COLUMNS, line, strict=True)) for line in parsed[1:]]
    assert [row["reason"] for row in body] == [
        '\'=HYPERLINK("http://evil","click")', "'-took back, \"oops\"", "", "'＠cmd"]
    assert [row["credits"] for row in body] == ["1.5", "-5", "-2.5", "2"]
    assert body[0]["time_utc"] == "2026-01-01T00:00:00+00:00"
    assert (body[0]["id"], body[0]["user_id"], body[0]["job_id"], body[0]["actor_id"]) == ("1", "5005", "", "6006")
