"""The figures as a table: one column per run, the shipped bot against the baseline as a ratio,
and the targets checked. The same table renders as text (terminal) or Markdown (BENCHMARKS.md).
Rows that only some runs have (per process, PostgreSQL's own CPU, the kill, edit jobs) appear when
a run has them, so a single process on SQLite prints the table it always printed, plus the
exactly-once rows and the jobs done and failed of each kind."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from datetime import UTC, datetime

from bench.figures import FUSION, RunFigures
from bench.world import Scenario

MiB = 1024 * 1024
Row = tuple[str, Callable[[RunFigures], float | int | str | None], str]
# The CPU per job of the earlier run that the CPU target is read against (BENCHMARKS.md,
# `python -m bench --baseline`, 2026-11-21, one process on SQLite, polling).
EARLIER_CPU_MS_PER_JOB = 12.6
EARLIER_CPU_RUN = "2026-11-21"
CPU_TARGET_MS = 5.0  # "well under 10 ms" read as at most half of it

ROWS: list[Row] = [
    ("EvoLink creates per job", lambda f: f.creates / f.jobs if f.jobs else None, "{:.2f}"),
    ("EvoLink polls per job", lambda f: f.polls_per_job, "{:.2f}"),
    ("  polls per image job", lambda f: f.polls_per_job_of("image"), "{:.2f}"),
    ("  polls per video job", lambda f: f.polls_per_job_of("video"), "{:.2f}"),
    ("  polls per edit job", lambda f: f.polls_per_job_of("edit"), "{:.2f}"),
    ("Completed -> delivered, median (s)", lambda f: f.delay(0.5), "{:.2f}"),
    ("Completed -> delivered, p95 (s)", lambda f: f.delay(0.95), "{:.2f}"),
    ("Completed -> delivered, max (s)", lambda f: max(f.delays) if f.delays else None, "{:.2f}"),
    ("Discord requests per job", lambda f: f.discord_requests / f.jobs if f.jobs else None, "{:.2f}"),
    ("Discord 429s", lambda f: f.rate_limited, "{}"),
    ("Input pictures EvoLink fetched from Discord", lambda f: f.pictures_fetched, "{}"),
    ("Jobs shown with the bot token", lambda f: f.shown_with_bot_token, "{}"),
    ("Message edits per job", lambda f: f.edits / f.jobs if f.jobs else None, "{:.2f}"),
    ("Edits < 3 s after the previous one", lambda f: f.edits_too_close, "{}"),
    ("Shortest gap between edits (s)", lambda f: f.shortest_edit_gap, "{:.2f}"),
    ("Peak resident memory (MB)", lambda f: f.peak_rss / MiB, "{:.1f}"),
    ("CPU of the bot, whole run (s)", lambda f: f.cpu_total, "{:.1f}"),
    ("CPU of the bot while idle (ms per s)", lambda f: f.idle_cpu_ms_per_second, "{:.1f}"),
    ("CPU of the bot per job (ms)", lambda f: f.cpu_ms_per_job, "{:.2f}"),
    ("Jobs done / failed", lambda f: f"{f.done} / {f.failed}", "{}"),
    ("  image jobs (/imagine)", lambda f: f.done_and_failed_of("image"), "{}"),
    ("  video jobs (/animate)", lambda f: f.done_and_failed_of("video"), "{}"),
    ("  edit jobs (/edit)", lambda f: f.done_and_failed_of("edit"), "{}"),
    ("    of them fusions of two pictures", lambda f: f.done_and_failed_of(FUSION), "{}"),
    ("Jobs delivered exactly once", lambda f: f"{f.delivered_once} / {f.done}", "{}"),
    ("Jobs charged exactly once", lambda f: f"{f.charged_once} / {f.done}", "{}"),
    ("EvoLink tasks created twice", lambda f: f.created_twice, "{}"),
    ("Most tasks running at EvoLink at once", lambda f: f.most_in_flight, "{}"),
    ("Callbacks answered", lambda f: f.callbacks_received, "{}"),
    ("Burst, first command to last result (s)", lambda f: f.wall, "{:.1f}"),
]
# The rows of one kind of job, left out when no run had a job of that kind (a burst without edits
# prints no edit rows).
_KIND_ROWS = {"  polls per edit job": "edit", "  image jobs (/imagine)": "image",
              "  video jobs (/animate)": "video", "  edit jobs (/edit)": "edit",
              "    of them fusions of two pictures": FUSION}
_DONE_ROWS = {label for label in _KIND_ROWS if not label.startswith("  polls")}
_KINDS = {"image", "video", "edit"}
KILL_ROWS: list[Row] = [
    ("Lease (LEASE_SECONDS, s)", lambda f: f.kill.lease_seconds if f.kill else None, "{:g}"),
    ("Jobs held by the killed process", lambda f: len(f.kill.orphans) if f.kill else None, "{}"),
    ("Kill -> last orphan taken over (s)", lambda f: f.kill.last_taken_over if f.kill else None, "{:.1f}"),
    ("Kill -> last orphan delivered (s)", lambda f: f.kill.last_delivered if f.kill else None, "{:.1f}"),
    ("Kill -> last orphan's task completed (s)", lambda f: f.kill.last_completed if f.kill else None, "{:.1f}"),
]


def _process_rows(count: int) -> tuple[list[Row], list[Row]]:
    """Peak memory and CPU per job of each process (a killed one's until its kill)."""
    def peak(index: int) -> Callable[[RunFigures], float | None]:
        return lambda f: f.processes[index].peak_rss / MiB if index < len(f.processes) else None

    def cpu(index: int) -> Callable[[RunFigures], float | None]:
        return lambda f: f.process_cpu_ms_per_job(index) if index < len(f.processes) else None

    return ([(f"  shard {index}", peak(index), "{:.1f}") for index in range(count)],
            [(f"  shard {index}", cpu(index), "{:.2f}") for index in range(count)])


def rows_for(runs: list[RunFigures]) -> list[Row]:
    """ROWS, with the rows that only some of these runs have."""
    count = max((len(run.processes) for run in runs), default=1)
    peaks, cpus = _process_rows(count) if count > 1 else ([], [])
    rows: list[Row] = []
    for row in ROWS:
        label = row[0]
        if not _shown(label, runs):
            continue
        if count > 1 and label == "Peak resident memory (MB)":
            row = ("Peak resident memory, largest process (MB)", row[1], row[2])
        elif count > 1 and label == "CPU of the bot per job (ms)":
            row = ("CPU of the bot per job, all processes (ms)", row[1], row[2])
        rows.append(row)
        if label == "Peak resident memory (MB)":
            rows += peaks
        elif label == "CPU of the bot per job (ms)":
            rows += cpus
            if any(run.server_cpu_burst is not None for run in runs):
                rows += [("CPU of PostgreSQL per job (ms)", lambda f: f.server_cpu_ms_per_job, "{:.2f}"),
                         ("CPU of the bot + PostgreSQL per job (ms)", lambda f: (
                             f.cpu_ms_per_job + f.server_cpu_ms_per_job
                             if f.server_cpu_ms_per_job is not None else None), "{:.2f}")]
    if any(run.kill is not None for run in runs):
        rows += KILL_ROWS
    return rows


def _shown(label: str, runs: list[RunFigures]) -> bool:
    """Whether a row of ROWS applies to these runs: a kind's rows when some run had jobs of that
    kind, its done / failed only when the runs had more than one kind (one would repeat the total),
    the input pictures when EvoLink fetched any."""
    kinds = {kind for run in runs for kind, jobs in run.jobs_by_kind.items() if jobs}
    if label in _DONE_ROWS and len(kinds & _KINDS) < 2:
        return False
    if label in _KIND_ROWS:
        return _KIND_ROWS[label] in kinds
    if label == "Input pictures EvoLink fetched from Discord":
        return any(run.pictures_fetched for run in runs)
    return True


RATIO_ROWS = {"EvoLink polls per job", "  polls per image job", "  polls per video job", "  polls per edit job",
              "Completed -> delivered, median (s)", "Completed -> delivered, p95 (s)",
              "Discord requests per job", "Message edits per job", "CPU of the bot per job (ms)"}


def _cell(figures: RunFigures, value: Callable[[RunFigures], float | int | str | None], shape: str) -> str:
    number = value(figures)
    if isinstance(number, str):
        return number
    return "-" if number is None else shape.format(number)


def table(runs: list[RunFigures], baseline: RunFigures | None) -> list[list[str]]:
    header = ["", *(run.label for run in runs)]
    if baseline is not None:
        header.append(f"{runs[0].label} / {baseline.label}")
    rows = [header]
    for label, value, shape in rows_for([*runs, *([baseline] if baseline else [])]):
        row = [label, *(_cell(run, value, shape) for run in runs)]
        if baseline is not None:
            ours, theirs = value(runs[0]), value(baseline)
            row.append(f"{ours / theirs:.2f}" if label in RATIO_ROWS and isinstance(ours, int | float)
                       and isinstance(theirs, int | float) and theirs else "")
        rows.append(row)
    return rows


def targets(runs: list[RunFigures], baseline: RunFigures | None) -> list[str]:
    shipped = runs[0]
    lines = []

    def check(ok: bool, text: str) -> None:
        lines.append(f"[{'met' if ok else 'MISSED'}] {text}")

    if baseline is not None and baseline.polls_per_job:
        ratio = shipped.polls_per_job / baseline.polls_per_job
        check(ratio <= 0.5, f"polls per job at most half the baseline's: {ratio:.2f} of it")
        ours, theirs = shipped.delay(0.95), baseline.delay(0.95)
        if ours is not None and theirs is not None:
            check(ours <= theirs, f"p95 completed -> delivered no worse than the baseline: {ours:.2f} s vs {theirs:.2f} s")
    for run in runs:
        by = "; ".join(f"{count} {what}" for what, count in run.rate_limited_by.most_common())
        check(run.rate_limited == 0, f"{run.label}: zero Discord 429s ({run.rate_limited}{': ' + by if by else ''})")
        check(run.edits_too_close == 0,
              f"{run.label}: no message edited twice within 3 s ({run.edits_too_close} pairs)")
    for run in runs:
        check(run.done == run.jobs and run.delivered_once == run.done and run.charged_once == run.done
              and run.created_twice == 0,
              f"{run.label}: every job done, delivered once and charged once, no EvoLink task created twice "
              f"({run.done} of {run.jobs} done, {run.delivered_once} delivered once, {run.charged_once} "
              f"charged once, {run.created_twice} created twice)")
    several = len(shipped.processes) > 1
    check(shipped.peak_rss < 150 * MiB,
          f"peak memory under 150 MB with up to {shipped.most_in_flight} jobs in flight at EvoLink: "
          f"{shipped.peak_rss / MiB:.1f} MB" + (" (the largest of the processes)" if several else ""))
    check(shipped.cpu_ms_per_job <= CPU_TARGET_MS, cpu_target_text(shipped))
    for run in runs:
        if run.kill is not None:
            lines.append(f"[info] {kill_text(run)}")
    big = shipped.big_video
    if big is not None:
        check(big.growth < 20 * MiB, f"a {big.size / 1e6:.0f} MB video adds under 20 MB: "
              f"{big.growth / MiB:.1f} MB (resident {big.rss_before / MiB:.1f} -> peak "
              f"{big.peak_during / MiB:.1f} MB; posted {big.uploaded / 1e6:.1f} MB after re-encoding, "
              f"{big.seconds:.1f} s)")
    return lines


def cpu_target_text(run: RunFigures) -> str:
    """The CPU target, on this run's store, against the earlier run's figure."""
    store = "PostgreSQL" if run.store == "postgres" else "SQLite"
    count = len(run.processes)
    whose = f"summed over {count} processes" if count > 1 else "one process"
    text = (f"{store}, {run.label}: CPU well under 10 ms per job (at most {CPU_TARGET_MS:g} ms): "
            f"{run.cpu_ms_per_job:.2f} ms ({whose}), against {EARLIER_CPU_MS_PER_JOB} ms in the "
            f"{EARLIER_CPU_RUN} run (one process, SQLite)")
    if run.server_cpu_ms_per_job is not None:
        text += (f"; PostgreSQL itself used {run.server_cpu_ms_per_job:.2f} ms more per job "
                 f"({run.cpu_ms_per_job + run.server_cpu_ms_per_job:.2f} ms with it)")
    return text


def kill_text(run: RunFigures) -> str:
    kill = run.kill
    assert kill is not None
    delivered = (f"{kill.last_delivered:.1f} s" if kill.last_delivered is not None
                 else f"never ({kill.undelivered} undelivered)")
    completed = f"{kill.last_completed:.1f} s" if kill.last_completed is not None else "-"
    taken = f"{kill.last_taken_over:.1f} s" if kill.last_taken_over is not None else "-"
    return (f"{run.label}: {kill.victim} was SIGKILLed holding {len(kill.orphans)} job(s), with "
            f"LEASE_SECONDS={kill.lease_seconds:g}; the last of them was taken over {taken} and delivered "
            f"{delivered} after the kill (the last of their tasks completed at EvoLink {completed} after "
            "it). The killed process's memory and CPU are counted up to its kill.")


def setup(runs: list[RunFigures], store_description: str) -> str:
    """Which bot processes ran on which store."""
    count = max((len(run.processes) for run in runs), default=1)
    processes = ("one bot process" if count == 1 else
                 f"{count} bot processes (SHARD_COUNT={count}, SHARD_IDS=0 to {count - 1}, one each; "
                 f"one server per shard, the channels spread over them)")
    return f"{processes}, on {store_description}"


def describe(scenario: Scenario) -> str:
    fusions = f" ({scenario.fusions} of them fusing two pictures)" if scenario.edits else ""
    return (f"{scenario.images} /imagine + {scenario.videos} /animate + {scenario.edits} /edit jobs{fusions} "
            f"from {scenario.users} users "
            f"in {scenario.channels} channels, sent over {scenario.burst_seconds:g} s; EvoLink's "
            f"estimated_time {scenario.image_estimate} s (images) and {scenario.video_estimate} s "
            f"(videos), each task taking its estimate x {1 - scenario.duration_spread:g}..."
            f"{1 + scenario.duration_spread:g}, with progress curves that bend by up to "
            f"e^{scenario.progress_curve_spread:g}")


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, {memory:.0f} GB RAM, "
            f"Python {platform.python_version()}")


def as_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i])
                               for i, cell in enumerate(row)) for row in rows)


def as_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(cell.strip() for cell in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def markdown_section(command: str, scenario: Scenario, bot_setup: str, rows: list[list[str]], checks: list[str],
                     problems: list[str]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"## `{command}` ({when})", "", f"- Machine: {machine()}", f"- Bot: {bot_setup}",
             f"- Burst: {describe(scenario)}", "",
             as_markdown(rows), "", *(f"- {line}" for line in checks)]
    if problems:
        parts += ["", "Problems seen:", *(f"- {line}" for line in problems)]
    return "\n".join(parts) + "\n"
