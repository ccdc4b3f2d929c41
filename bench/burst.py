"""Firing a burst of slash commands at the bot through the fake gateway, and waiting for every job
to end, as the bot's own database tells it."""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from PIL import Image

from bench.store import BotDatabase
from bench.world import World
from tests.fakes.discord import slash_command_payload

FIRST_USER_ID = 9_000_000


class Picture(NamedTuple):
    """A member's picture, as the benchmark attaches it to a command."""

    name: str
    data: bytes
    content_type: str


# The commands of a burst, in mix(): an edit of one picture, and a fusion of two (both /edit).
IMAGINE, ANIMATE, EDIT, FUSE = "imagine", "animate", "edit", "fuse"


@dataclass
class Fired:
    """What the benchmark sent: interaction id -> job number, and job number -> its command."""

    interactions: dict[int, int] = field(default_factory=dict)
    commands: dict[int, str] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0


def first_frame() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 360), (30, 110, 170)).save(buffer, format="PNG")
    return buffer.getvalue()


def pictures_to_edit() -> tuple[Picture, Picture]:
    """A PNG to edit and a JPEG to fuse with it, both within the editing model's rules (each side
    384..5000 px, no transparency), so the bot passes them on as they are, repairing nothing."""
    first, second = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (768, 768), (200, 80, 40)).save(first, format="PNG")
    Image.new("RGB", (640, 480), (240, 240, 230)).save(second, format="JPEG", quality=85)
    return Picture("scene.png", first.getvalue(), "image/png"), Picture("logo.jpg", second.getvalue(), "image/jpeg")


def mix(counts: dict[str, int]) -> list[str]:
    """The order of a burst's commands, given how many of each: every command spread evenly over
    the burst, each count exact (smooth weighted round-robin, as nginx spreads requests over
    weighted servers; ties go to the earlier command in `counts`)."""
    total = sum(counts.values())
    credit = dict.fromkeys(counts, 0)
    order = []
    for _ in range(total):
        for command, count in counts.items():
            credit[command] += count
        chosen = max(credit, key=credit.__getitem__)
        credit[chosen] -= total
        order.append(chosen)
    return order


def imagine_payload(world: World, number: int, user_id: int, channel_id: int) -> dict:
    options = [{"name": "prompt", "type": 3, "value": f"bench job {number}: a lighthouse at dusk"}]
    return slash_command_payload(world.discord, name="imagine", guild_id=world.guild_of[channel_id],
                                 channel_id=channel_id, user_id=user_id, options=options)


def animate_payload(world: World, number: int, user_id: int, channel_id: int, frame: bytes,
                    attachment_size_limit: int | None = None) -> dict:
    attachment = world.discord.make_attachment(f"frame-{number}.png", frame, "image/png")
    options = [{"name": "image", "type": 11, "value": attachment["id"]},
               {"name": "prompt", "type": 3, "value": f"bench job {number}: waves roll in"}]
    return slash_command_payload(
        world.discord, name="animate", guild_id=world.guild_of[channel_id], channel_id=channel_id, user_id=user_id,
        options=options, resolved={"attachments": {attachment["id"]: attachment}},
        attachment_size_limit=attachment_size_limit,
    )


def edit_payload(world: World, number: int, user_id: int, channel_id: int, pictures: list[Picture]) -> dict:
    """/edit of one picture, or with `image2` a fusion of two."""
    attachments = [world.discord.make_attachment(f"{number}-{picture.name}", picture.data, picture.content_type)
                   for picture in pictures]
    prompt = "put the logo on the wall" if len(pictures) > 1 else "the same scene at night"
    options = [{"name": "image", "type": 11, "value": attachments[0]["id"]},
               {"name": "prompt", "type": 3, "value": f"bench job {number}: {prompt}"},
               *({"name": "image2", "type": 11, "value": attachment["id"]} for attachment in attachments[1:])]
    return slash_command_payload(
        world.discord, name="edit", guild_id=world.guild_of[channel_id], channel_id=channel_id, user_id=user_id,
        options=options, resolved={"attachments": {attachment["id"]: attachment for attachment in attachments}},
    )


async def fire_burst(world: World) -> Fired:
    """Every user fires their share of /imagine, /animate and /edit (one picture, or two fused),
    spread evenly over the burst window, round-robin over the channels, the commands mixed evenly
    (see `mix`)."""
    scenario = world.scenario
    frame = first_frame()
    picture, second_picture = pictures_to_edit()
    fired = Fired(started=time.monotonic())
    order = mix({IMAGINE: scenario.images, ANIMATE: scenario.videos,
                 EDIT: scenario.edits - scenario.fusions, FUSE: scenario.fusions})
    gap = scenario.burst_seconds / max(1, scenario.jobs)
    for number, command in enumerate(order):
        user_id = FIRST_USER_ID + number % scenario.users
        channel_id = world.channel_ids[number % len(world.channel_ids)]
        if command == ANIMATE:
            payload = animate_payload(world, number, user_id, channel_id, frame)
        elif command == EDIT:
            payload = edit_payload(world, number, user_id, channel_id, [picture])
        elif command == FUSE:
            payload = edit_payload(world, number, user_id, channel_id, [picture, second_picture])
        else:
            payload = imagine_payload(world, number, user_id, channel_id)
        interaction_id = await world.discord.send_interaction(payload)
        fired.interactions[interaction_id] = number
        fired.commands[number] = command
        # Sleep to the schedule, not by a fixed gap: sending takes time too.
        await asyncio.sleep(max(0.0, fired.started + (number + 1) * gap - time.monotonic()))
    return fired


async def job_states(database: BotDatabase, fired: Fired) -> dict[int, str]:
    """Interaction id -> the state of its job, for the fired interactions that have one."""
    # In a thread: the fakes share this loop, and must keep answering the bot meanwhile.
    rows = await asyncio.to_thread(database.rows, "SELECT interaction_id, state FROM jobs")
    return {row["interaction_id"]: row["state"] for row in rows if row["interaction_id"] in fired.interactions}


async def wait_until_all_end(database: BotDatabase, fired: Fired, world: World, timeout: float) -> list[str]:
    """Wait until every fired interaction either has a job that is done or failed, or was refused
    without a job. Returns problems (jobs that did not end in time, refusals)."""
    deadline = time.monotonic() + timeout
    while True:
        states = await job_states(database, fired)
        ended = sum(1 for state in states.values() if state in ("done", "failed"))
        refused = _refused(world, fired, states)
        if ended + len(refused) >= len(fired.interactions):
            fired.finished = time.monotonic()
            problems = [f"interaction {i} refused: {text[:120]}" for i, text in refused.items()]
            return problems
        if time.monotonic() > deadline:
            unfinished = len(fired.interactions) - ended - len(refused)
            return [f"{unfinished} job(s) had not ended after {timeout:.0f} s"]
        await asyncio.sleep(0.5)


def _refused(world: World, fired: Fired, states: dict[int, str]) -> dict[int, str]:
    """Interactions answered with a private refusal and no job (a limit the bench set too low)."""
    refused = {}
    for interaction_id in fired.interactions:
        if interaction_id in states:
            continue
        record = world.discord.interaction_responses.get(interaction_id)
        if record is None or record.original_message_id is None:
            continue
        message = world.discord.messages.get(record.original_message_id)
        if message is not None and message.ephemeral:
            refused[interaction_id] = message.text
    return refused
