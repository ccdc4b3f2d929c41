"""Types are a check: mypy, configured in pyproject.toml ([tool.mypy]), passes on bot/ and cogs/."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).parents[2]


def test_mypy_passes_on_the_bot_and_its_cogs(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)  # mypy reads its settings and files from pyproject.toml here
    report, errors, status = api.run(["--cache-dir", str(tmp_path / "mypy-cache")])
    assert status == 0, report + errors
