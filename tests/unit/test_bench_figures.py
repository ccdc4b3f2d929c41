"""The benchmark's pure parts: figures summed or maxed over bot processes, the ledger read as
"charged once", a lease's owner read back to its process, the rows each kind of run prints, and
the options it refuses. The benchmark itself (python -m bench) measures and is not run here."""

from __future__ import annotations

import pytest

from bench import report
from bench.__main__ import main as bench_main
from bench.figures import KillFigures, ProcessFigures, RunFigures, _charged_once, lease_pid

MiB = 1024 * 1024


def two_processes(**kwargs) -> RunFigures:
    figures = RunFigures("polling", jobs=200, done=200, **kwargs)
    figures.processes = [
        ProcessFigures("shard 0", peak_rss=110 * MiB, cpu_burst=1.5, cpu_total=4.0, idle_cpu_rate=0.004),
        ProcessFigures("shard 1", peak_rss=95 * MiB, cpu_burst=0.9, cpu_total=3.0, idle_cpu_rate=0.002)]
    return figures


def test_memory_is_the_largest_process_and_cpu_the_sum_of_them_all():
    figures = two_processes()

    assert figures.peak_rss == 110 * MiB
    assert figures.cpu_burst == pytest.approx(2.4)
    assert figures.cpu_total == pytest.approx(7.0)
    assert figures.idle_cpu_ms_per_second == pytest.approx(6.0)
    assert figures.cpu_ms_per_job == pytest.approx(12.0)
    assert [figures.process_cpu_ms_per_job(i) for i in (0, 1)] == pytest.approx([7.5, 4.5])


def test_postgresql_cpu_is_per_job_and_absent_on_sqlite():
    assert two_processes(server_cpu_burst=0.5).server_cpu_ms_per_job == pytest.approx(2.5)
    assert two_processes().server_cpu_ms_per_job is None


def test_a_job_is_charged_once_only_with_one_reserve_and_one_settle():
    jobs = [{"id": 1, "state": "done"}, {"id": 2, "state": "done"}, {"id": 3, "state": "done"},
            {"id": 4, "state": "failed"}]
    ledger = [{"job_id": 1, "kind": "reserve"}, {"job_id": 1, "kind": "settle"},
              {"job_id": 2, "kind": "reserve"}, {"job_id": 2, "kind": "settle"}, {"job_id": 2, "kind": "settle"},
              {"job_id": 3, "kind": "reserve"},
              {"job_id": 4, "kind": "reserve"}, {"job_id": 4, "kind": "refund"}]

    charged_once, problems = _charged_once(jobs, ledger)

    assert charged_once == 1
    assert problems == ["job 2 (done): ledger ['reserve', 'settle', 'settle']",
                        "job 3 (done): ledger ['reserve']"]


def test_a_lease_owner_names_its_process_id():
    assert lease_pid("bench-host:4242:a1b2c3") == 4242
    assert lease_pid("host:with:colons:4242:a1b2c3") == 4242
    assert lease_pid(None) is None
    assert lease_pid("garbage") is None


def rendered(runs: list[RunFigures]) -> dict[str, list[str]]:
    """Label -> cells; the per-process rows (same labels under memory and under CPU) are keyed
    "<label> <n>" in order of appearance."""
    rows: dict[str, list[str]] = {}
    for label, *cells in report.table(runs, None)[1:]:
        key = label if label not in rows else f"{label} 2"
        rows[key] = cells
    return rows


def test_one_process_prints_no_per_process_postgresql_or_kill_rows():
    single = RunFigures("polling", jobs=10, done=10, delivered_once=10, charged_once=9)
    single.processes = [ProcessFigures("bot", peak_rss=80 * MiB, cpu_burst=0.1)]

    rows = rendered([single])

    assert rows["Peak resident memory (MB)"] == ["80.0"]
    assert rows["CPU of the bot per job (ms)"] == ["10.00"]
    assert rows["Jobs charged exactly once"] == ["9 / 10"]
    assert not any(label.startswith(("  shard", "Kill", "CPU of PostgreSQL")) for label in rows)


def test_several_processes_print_each_and_the_kill_run_its_own_rows():
    kill = two_processes(server_cpu_burst=0.5)
    kill.label = "kill"
    kill.kill = KillFigures(lease_seconds=10, victim="shard 0", orphans=[1, 2, 3], last_taken_over=9.5,
                            last_delivered=31.25, last_completed=30.5)

    rows = rendered([two_processes(server_cpu_burst=0.5), kill])

    assert rows["Peak resident memory, largest process (MB)"] == ["110.0", "110.0"]
    assert rows["CPU of the bot per job, all processes (ms)"] == ["12.00", "12.00"]
    assert rows["  shard 0"] == ["110.0", "110.0"] and rows["  shard 1"] == ["95.0", "95.0"]
    assert rows["  shard 0 2"] == ["7.50", "7.50"] and rows["  shard 1 2"] == ["4.50", "4.50"]
    assert rows["CPU of PostgreSQL per job (ms)"] == ["2.50", "2.50"]
    assert rows["CPU of the bot + PostgreSQL per job (ms)"] == ["14.50", "14.50"]
    assert rows["Lease (LEASE_SECONDS, s)"] == ["-", "10"]
    assert rows["Jobs held by the killed process"] == ["-", "3"]
    assert rows["Kill -> last orphan delivered (s)"] == ["-", "31.2"]


def test_the_cpu_target_names_the_store_and_the_earlier_figure():
    text = report.cpu_target_text(two_processes(store="postgres", server_cpu_burst=0.5))

    assert text.startswith("PostgreSQL, polling: CPU well under 10 ms per job (at most 5 ms): 12.00 ms "
                           "(summed over 2 processes), against 12.6 ms in the 2026-11-21 run")
    assert "PostgreSQL itself used 2.50 ms more per job (14.50 ms with it)" in text


def test_several_processes_without_postgresql_are_refused_before_anything_runs(capsys):
    with pytest.raises(SystemExit) as exited:
        bench_main(["--processes", "2"])

    assert exited.value.code == 2
    assert "--processes 2 needs --database postgres" in capsys.readouterr().err
