"""The figures as a table: one column per run, the shipped bot against the baseline as a ratio,
and the targets checked. The same table renders as text (terminal) or Markdown (BENCHMARKS.md)."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from datetime import UTC, datetime

from bench.figures import RunFigures
from bench.world import Scenario

MiB = 1024 * 1024
Row = tuple[str, Callable[[RunFigures], float | int | None], str]

ROWS: list[Row] = [
    ("EvoLink creates per job", lambda f: f.creates / f.jobs if f.jobs else None, "{:.2f}"),
    ("EvoLink polls per job", lambda f: f.polls_per_job, "{:.2f}"),
    ("  polls per image job", lambda f: f.polls_per_job_of("image"), "{:.2f}"),
    ("  polls per video job", lambda f: f.polls_per_job_of("video"), "{:.2f}"),
    ("Completed -> delivered, median (s)", lambda f: f.delay(0.5), "{:.2f}"),
    ("Completed -> delivered, p95 (s)", lambda f: f.delay(0.95), "{:.2f}"),
    ("Completed -> delivered, max (s)", lambda f: max(f.delays) if f.delays else None, "{:.2f}"),
    ("Discord requests per job", lambda f: f.discord_requests / f.jobs if f.jobs else None, "{:.2f}"),
    ("Discord 429s", lambda f: f.rate_limited, "{}"),
    ("Message edits per job", lambda f: f.edits / f.jobs if f.jobs else None, "{:.2f}"),
    ("Edits < 3 s after the previous one", lambda f: f.edits_too_close, "{}"),
    ("Shortest gap between edits (s)", lambda f: f.shortest_edit_gap, "{:.2f}"),
    ("Peak resident memory (MB)", lambda f: f.peak_rss / MiB, "{:.1f}"),
    ("CPU of the bot, whole run (s)", lambda f: f.cpu_total, "{:.1f}"),
    ("CPU of the bot per job (ms)", lambda f: f.cpu_ms_per_job, "{:.2f}"),
    ("Jobs done / failed", lambda f: None, "{}"),
    ("Most tasks running at EvoLink at once", lambda f: f.most_in_flight, "{}"),
    ("Callbacks answered", lambda f: f.callbacks_received, "{}"),
    ("Burst, first command to last result (s)", lambda f: f.wall, "{:.1f}"),
]
RATIO_ROWS = {"EvoLink polls per job", "  polls per image job", "  polls per video job",
              "Completed -> delivered, median (s)", "Completed -> delivered, p95 (s)",
              "Discord requests per job", "Message edits per job", "CPU of the bot per job (ms)"}


def _cell(figures: RunFigures, label: str, value: Callable[[RunFigures], float | int | None], shape: str) -> str:
    if label == "Jobs done / failed":
        return f"{figures.done} / {figures.failed}"
    number = value(figures)
    return "-" if number is None else shape.format(number)


def table(runs: list[RunFigures], baseline: RunFigures | None) -> list[list[str]]:
    header = ["", *(run.label for run in runs)]
    if baseline is not None:
        header.append(f"{runs[0].label} / {baseline.label}")
    rows = [header]
    for label, value, shape in ROWS:
        row = [label, *(_cell(run, label, value, shape) for run in runs)]
        if baseline is not None:
            ours, theirs = value(runs[0]), value(baseline)
            row.append(f"{ours / theirs:.2f}" if label in RATIO_ROWS and ours is not None and theirs else "")
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
        check(run.rate_limited == 0, f"{run.label}: zero Discord 429s ({run.rate_limited})")
        check(run.edits_too_close == 0,
              f"{run.label}: no message edited twice within 3 s ({run.edits_too_close} pairs)")
    check(shipped.peak_rss < 150 * MiB,
          f"peak memory under 150 MB with up to {shipped.most_in_flight} jobs in flight at EvoLink: "
          f"{shipped.peak_rss / MiB:.1f} MB")
    # "Well under 10 ms" is read as at most half of it.
    check(shipped.cpu_ms_per_job <= 5, f"CPU well under 10 ms per job (at most 5 ms): "
          f"{shipped.cpu_ms_per_job:.2f} ms")
    big = shipped.big_video
    if big is not None:
        check(big.growth < 20 * MiB, f"a {big.size / 1e6:.0f} MB video adds under 20 MB: "
              f"{big.growth / MiB:.1f} MB (resident {big.rss_before / MiB:.1f} -> peak "
              f"{big.peak_during / MiB:.1f} MB; posted {big.uploaded / 1e6:.1f} MB after re-encoding, "
              f"{big.seconds:.1f} s)")
    return lines


def describe(scenario: Scenario) -> str:
    return (f"{scenario.images} /imagine + {scenario.videos} /animate jobs from {scenario.users} users "
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


def markdown_section(command: str, scenario: Scenario, rows: list[list[str]], checks: list[str],
                     problems: list[str]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"## `{command}` ({when})", "", f"- Machine: {machine()}", f"- Burst: {describe(scenario)}", "",
             as_markdown(rows), "", *(f"- {line}" for line in checks)]
    if problems:
        parts += ["", "Problems seen:", *(f"- {line}" for line in problems)]
    return "\n".join(parts) + "\n"
