"""Media slots: a bound on work at once, guilds served in turn, one picture per member."""

from __future__ import annotations

import asyncio

import pytest

from bot.media.limits import FairSlots, MediaLimits


async def test_never_more_holders_than_the_limit():
    slots = FairSlots(2)
    running = peak = 0

    async def work(guild: int) -> None:
        nonlocal running, peak
        async with slots.slot(guild):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(work(guild % 3) for guild in range(30)))
    assert peak == 2 and slots.in_use == 0 and slots.waiting == 0


async def test_a_guilds_burst_waits_behind_itself_not_in_front_of_another_guild():
    slots = FairSlots(1)
    served: list[str] = []
    gate = asyncio.Event()

    async def work(name: str, guild: int) -> None:
        async with slots.slot(guild):
            served.append(name)
            await gate.wait()

    holder = asyncio.create_task(work("A0", 1))
    await asyncio.sleep(0)
    burst = [asyncio.create_task(work(f"A{i}", 1)) for i in range(1, 6)]
    await asyncio.sleep(0)
    late = [asyncio.create_task(work("B1", 2)), asyncio.create_task(work("C1", 3))]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(holder, *burst, *late)
    # Guild 1 arrived with six, then 2 and 3 with one each: they take turns after A's first.
    assert served == ["A0", "A1", "B1", "C1", "A2", "A3", "A4", "A5"]


async def test_a_cancelled_waiter_gives_up_its_place_and_never_leaks_a_slot():
    slots = FairSlots(1)
    gate = asyncio.Event()

    async def hold(guild: int) -> None:
        async with slots.slot(guild):
            await gate.wait()

    holder = asyncio.create_task(hold(1))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold(2))
    await asyncio.sleep(0)
    assert slots.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.waiting == 0
    gate.set()
    await holder
    assert slots.in_use == 0
    async with slots.slot(3):  # the slot is free again
        assert slots.in_use == 1


async def test_a_waiter_cancelled_just_as_it_is_granted_passes_the_slot_on():
    slots = FairSlots(1)
    order: list[str] = []

    async def hold(name: str, guild: int) -> None:
        async with slots.slot(guild):
            order.append(name)
            await asyncio.sleep(0)

    async def first_then_cancel_the_next() -> None:
        async with slots.slot(1):
            order.append("first")
            await asyncio.sleep(0)
        # The release just granted the slot to the next waiter, which has not run yet.
        granted_then_cancelled.cancel()

    holder = asyncio.create_task(first_then_cancel_the_next())
    await asyncio.sleep(0)
    granted_then_cancelled = asyncio.create_task(hold("never", 2))
    after = asyncio.create_task(hold("third", 3))
    await asyncio.sleep(0)
    await holder
    with pytest.raises(asyncio.CancelledError):
        await granted_then_cancelled
    await after
    assert order == ["first", "third"] and slots.in_use == 0


async def test_a_member_prepares_one_picture_at_a_time():
    limits = MediaLimits(downloads=10, processing=10)
    inside = peak = 0

    async def prepare(user: int) -> None:
        nonlocal inside, peak
        async with limits.preparing_picture(user):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(prepare(42) for _ in range(6)))
    assert peak == 1
    await asyncio.gather(prepare(1), prepare(2))  # different members do not wait for each other
    assert limits._preparing == {}  # nothing kept once nobody prepares
