"""The benchmark's pure parts: figures summed or maxed over bot processes, the ledger read as
"charged once", a lease's owner read back to its process, the rows each kind of run prints, the
options it refuses, the burst's mix of commands and its pictures to edit, and an edit's figures
read from the fakes (on loopback). The benchmark itself (python -m bench) measures and is not run
here."""

from __future__ import annotations

from collections import Counter

import aiohttp
import pytest

from bench import report
from bench.__main__ import main as bench_main
from bench.burst import ANIMATE, EDIT, FUSE, IMAGINE, Fired, mix, pictures_to_edit
from bench.figures import (
    FUSION,
    KillFigures,
    ProcessFigures,
    RunFigures,
    _charged_once,
    figures_of,
    lease_pid,
)
from bench.world import EVOLINK_KEY, Scenario, World
from bot.media.input_image import prepare_input_image
from bot.media.picture_rules import PICTURE_TO_EDIT

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


def test_fusions_must_be_among_the_edits(capsys):
    with pytest.raises(SystemExit) as exited:
        bench_main(["--jobs", "10", "--edits", "2", "--fusions", "3"])

    assert exited.value.code == 2
    assert "--fusions 3 is more than the 2 /edit jobs" in capsys.readouterr().err


def test_the_mix_fires_each_command_its_count_spread_over_the_burst():
    counts = {IMAGINE: 1000, ANIMATE: 50, EDIT: 67, FUSE: 33}

    order = mix(counts)

    assert Counter(order) == counts
    first_half = Counter(order[:len(order) // 2])
    for command, count in counts.items():
        assert abs(first_half[command] - count / 2) <= 1, (command, first_half[command])
    assert order[:30].count(IMAGINE) >= 25, "the first moments are not all edits and videos"


def test_the_pictures_to_edit_pass_the_editing_models_rules_unrepaired(tmp_path):
    for picture in pictures_to_edit():
        path = tmp_path / picture.name
        path.write_bytes(picture.data)

        prepared = prepare_input_image(path, tmp_path / "work", PICTURE_TO_EDIT, display_name=picture.name)

        assert prepared.path == path and prepared.changes == ()
        assert all(384 <= side <= 5000 for side in (prepared.width, prepared.height))


def edit_runs(**kinds: tuple[int, int, int]) -> list[RunFigures]:
    """One run with jobs of each kind given as (jobs, done, failed)."""
    run = RunFigures("polling", jobs=sum(jobs for jobs, _, _ in kinds.values()))
    for kind, (jobs, done, failed) in kinds.items():
        run.jobs_by_kind[kind], run.done_by_kind[kind], run.failed_by_kind[kind] = jobs, done, failed
        run.polls[kind] = 3 * jobs
    return [run]


def test_a_burst_with_edits_prints_their_polls_and_each_kinds_jobs_done_and_failed():
    rows = rendered(edit_runs(image=(100, 100, 0), video=(5, 4, 1), edit=(10, 9, 1), fusion=(3, 3, 0)))

    assert rows["  polls per edit job"] == ["3.00"]
    assert rows["  image jobs (/imagine)"] == ["100 / 0"]
    assert rows["  video jobs (/animate)"] == ["4 / 1"]
    assert rows["  edit jobs (/edit)"] == ["9 / 1"]
    assert rows["    of them fusions of two pictures"] == ["3 / 0"]


def test_a_burst_without_edits_prints_no_edit_rows_and_one_kind_no_rows_per_kind():
    rows = rendered(edit_runs(image=(100, 100, 0), video=(5, 5, 0)))
    assert "  polls per edit job" not in rows and "  edit jobs (/edit)" not in rows
    assert rows["  video jobs (/animate)"] == ["5 / 0"]

    rows = rendered(edit_runs(image=(100, 100, 0)))
    assert not any(label.endswith(("jobs (/imagine)", "jobs (/animate)")) for label in rows)
    assert rows["  polls per image job"] == ["3.00"] and rows["  polls per video job"] == ["0.00"]


def test_the_burst_is_described_with_its_edits_and_fusions():
    text = report.describe(Scenario(images=100, videos=5, edits=10, fusions=3))

    assert text.startswith("100 /imagine + 5 /animate + 10 /edit jobs (3 of them fusing two pictures) from")


async def test_a_fusion_counts_as_an_edit_and_evolinks_fetches_are_not_the_bots_discord_requests(tmp_path):
    """An edit's task is an image task at EvoLink: its polls count for the edit job. The fake
    EvoLink fetches both pictures from the fake Discord's CDN (as EvoLink does), and those fetches
    are shown apart, not as requests of the bot."""
    world = World(Scenario(images=0, videos=0, edits=1, fusions=1), tmp_path, tmp_path / "unused.mp4")
    await world.start()
    try:
        first, second = (world.discord.make_attachment(picture.name, picture.data, picture.content_type)
                         for picture in pictures_to_edit())
        headers = {"Authorization": f"Bearer {EVOLINK_KEY}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            fired = Fired(started=0.0)
            body = {"model": "wan2.5-image-to-image", "prompt": "bench job 0: put the logo on the wall",
                    "image_urls": [first["url"], second["url"]]}
            async with session.post(f"{world.evolink_url}/v1/images/generations", json=body) as answer:
                task = await answer.json()
            for _ in range(2):
                async with session.get(f"{world.evolink_url}/v1/tasks/{task['id']}") as answer:
                    assert answer.status == 200
        fired.interactions[555] = 0
        fired.commands[0] = FUSE
        job = {"id": 1, "kind": "edit", "state": "running", "interaction_id": 555, "message_id": None,
               "task_id": task["id"], "lease_owner": None}

        figures = figures_of("polling", world, [job], [], fired)
    finally:
        await world.close()

    assert world.evolink.tasks[task["id"]].size == (768, 768), "the fake read the first picture"
    assert figures.pictures_fetched == 2 and figures.discord_requests == 0
    assert figures.polls == Counter(edit=2)
    assert figures.jobs_by_kind == Counter(edit=1, **{FUSION: 1})
    assert figures.creates == 1
