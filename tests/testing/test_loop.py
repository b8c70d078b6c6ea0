"""VirtualClockLoop: timers on virtual time, real I/O and threads still real."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import corral
from corral._core._hooks import INSTRUMENTS
from corral.testing import VirtualClock, VirtualClockLoop, run, wait_all_tasks_blocked


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


async def test_time_is_the_clocks(virtual_clock: VirtualClock) -> None:
    loop = _loop()
    assert isinstance(loop, VirtualClockLoop)
    assert loop.clock is virtual_clock
    virtual_clock.advance(42)
    assert loop.time() == 42.0


async def test_sleep_jumps_exactly_to_the_timer(virtual_clock: VirtualClock) -> None:
    await asyncio.sleep(7.25)
    assert _loop().time() == 7.25
    stats = virtual_clock.statistics()
    assert (stats.jumps, stats.total_jumped, stats.total_advanced) == (1, 7.25, 0.0)


async def test_an_hour_of_sleep_takes_no_real_time(virtual_clock: VirtualClock) -> None:
    started = time.perf_counter()
    await asyncio.sleep(3600)
    elapsed = time.perf_counter() - started
    assert _loop().time() == 3600.0
    assert elapsed < 1.0


async def test_timeout_fires_exactly_at_its_deadline(virtual_clock: VirtualClock) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(30):
            await asyncio.sleep(100)
    assert _loop().time() == 30.0


@pytest.mark.corral_loops("virtual")
@given(st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=12))
async def test_timers_fire_in_deadline_order_at_their_deadlines(milliseconds: list[int]) -> None:
    loop = _loop()
    start = loop.time()
    delays = [ms / 1000 for ms in milliseconds]
    fired: list[tuple[float, float]] = []
    done = loop.create_future()

    def fire(delay: float) -> None:
        fired.append((delay, loop.time() - start))
        if len(fired) == len(delays):
            done.set_result(None)

    for delay in delays:
        loop.call_later(delay, fire, delay)
    await done
    assert [delay for delay, _ in fired] == sorted(delays)
    for delay, when in fired:
        assert when == pytest.approx(delay, abs=1e-6)


async def test_sleeping_tasks_wake_in_order(virtual_clock: VirtualClock) -> None:
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        woke.append((name, _loop().time()))

    async with asyncio.TaskGroup() as tg:
        tg.create_task(sleeper("slow", 20))
        tg.create_task(sleeper("fast", 5))
        tg.create_task(sleeper("middle", 10))
    assert woke == [("fast", 5.0), ("middle", 10.0), ("slow", 20.0)]
    assert virtual_clock.statistics().jumps == 3


async def test_to_thread_inside_a_timeout_is_not_cut_short(
    virtual_clock: VirtualClock,
) -> None:
    # The thread really works for a while; the 1 s virtual deadline must not fire meanwhile.
    def work() -> str:
        time.sleep(0.05)
        return "done"

    async with asyncio.timeout(1):
        result = await asyncio.to_thread(work)
    assert result == "done"
    assert _loop().time() == 0.0


async def test_a_thread_that_outlasts_the_deadline_in_real_time_times_out(
    virtual_clock: VirtualClock,
) -> None:
    release = threading.Event()
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await asyncio.to_thread(release.wait)
        assert _loop().time() == 0.05
    finally:
        release.set()


@pytest.mark.timeout(10)
async def test_cancelling_executor_work_releases_the_clock(virtual_clock: VirtualClock) -> None:
    release = threading.Event()
    try:
        job = asyncio.ensure_future(asyncio.to_thread(release.wait))
        await asyncio.sleep(0)
        job.cancel()
        started = time.perf_counter()
        await asyncio.sleep(600)  # would wait 600 real seconds if the job still held time
        assert time.perf_counter() - started < 1.0
        assert _loop().time() == 600.0
    finally:
        release.set()


async def test_loopback_echo_over_real_sockets(virtual_clock: VirtualClock) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(60):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            replies = []
            for word in (b"ping\n", b"pong\n", b"virtual time\n"):
                writer.write(word)
                await writer.drain()
                replies.append(await reader.readline())
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    assert replies == [b"PING\n", b"PONG\n", b"VIRTUAL TIME\n"]


async def test_reader_and_writer_on_one_socket(virtual_clock: VirtualClock) -> None:
    loop = _loop()
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        events: list[str] = []
        writable: asyncio.Future[None] = loop.create_future()
        readable: asyncio.Future[bytes] = loop.create_future()

        def on_writable() -> None:
            loop.remove_writer(left)
            events.append("writable")
            writable.set_result(None)

        def on_readable() -> None:
            loop.remove_reader(left)
            readable.set_result(left.recv(100))

        loop.add_reader(left, on_readable)
        loop.add_writer(left, on_writable)  # same socket: the selector key is modified
        await writable
        right.send(b"hi")
        events.append((await readable).decode())
    assert events == ["writable", "hi"]


@pytest.mark.timeout(10)
async def test_threadsafe_callbacks_wake_an_idle_loop(virtual_clock: VirtualClock) -> None:
    loop = _loop()
    answer: asyncio.Future[int] = loop.create_future()
    threading.Thread(target=loop.call_soon_threadsafe, args=(answer.set_result, 7)).start()
    assert await answer == 7
    assert loop.time() == 0.0


@pytest.mark.timeout(20)
async def test_autojump_threshold_gives_real_io_time_to_arrive(
    virtual_clock: VirtualClock,
) -> None:
    loop = _loop()
    virtual_clock.autojump_threshold = 5.0
    go = threading.Event()
    reply: asyncio.Future[str] = loop.create_future()

    def remote() -> None:
        go.wait()
        loop.call_soon_threadsafe(reply.set_result, "pong")

    thread = threading.Thread(target=remote)
    thread.start()
    go.set()
    async with asyncio.timeout(1):
        assert await reply == "pong"
    thread.join()
    assert loop.time() == 0.0


async def test_without_autojump_time_moves_only_by_hand(virtual_clock: VirtualClock) -> None:
    virtual_clock.autojump = False
    sleeper = asyncio.ensure_future(asyncio.sleep(5))
    await wait_all_tasks_blocked()
    assert not sleeper.done()
    virtual_clock.advance(4.5)
    await wait_all_tasks_blocked()
    assert not sleeper.done()
    virtual_clock.advance(0.5)
    await sleeper
    assert _loop().time() == 5.0
    assert virtual_clock.statistics().jumps == 0


@pytest.mark.timeout(10)
async def test_advance_from_another_thread_wakes_the_loop(virtual_clock: VirtualClock) -> None:
    virtual_clock.autojump = False
    sleeper = asyncio.ensure_future(asyncio.sleep(30))
    await wait_all_tasks_blocked()
    threading.Thread(target=virtual_clock.advance, args=(30,)).start()
    await sleeper
    assert _loop().time() == 30.0


@pytest.mark.timeout(10)
async def test_turning_autojump_back_on_resumes_jumping(virtual_clock: VirtualClock) -> None:
    virtual_clock.autojump = False
    sleeper = asyncio.ensure_future(asyncio.sleep(12))
    await wait_all_tasks_blocked()
    threading.Thread(target=setattr, args=(virtual_clock, "autojump", True)).start()
    await sleeper
    assert _loop().time() == 12.0


async def test_repr_shows_state_and_clock(virtual_clock: VirtualClock) -> None:
    assert repr(_loop()) == f"<VirtualClockLoop running, 0 executor jobs, clock={virtual_clock!r}>"


class _JumpRecorder:
    def __init__(self) -> None:
        self.jumps: list[dict[str, Any]] = []

    def event(self, source: object, name: str, fields: dict[str, Any]) -> None:
        if name == "clock_jump":
            self.jumps.append(fields)


async def test_jumps_are_reported_to_instruments(virtual_clock: VirtualClock) -> None:
    recorder = _JumpRecorder()
    INSTRUMENTS.add(recorder)
    try:
        await asyncio.sleep(2)
        virtual_clock.advance(1)
        await asyncio.sleep(0.5)
    finally:
        INSTRUMENTS.remove(recorder)
    assert recorder.jumps == [
        {"from": 0.0, "to": 2.0, "delta": 2.0, "automatic": True},
        {"from": 2.0, "to": 3.0, "delta": 1.0, "automatic": False},
        {"from": 3.0, "to": 3.5, "delta": 0.5, "automatic": True},
    ]


def test_repr_of_idle_and_closed_loops() -> None:
    loop = VirtualClockLoop()
    assert repr(loop).startswith("<VirtualClockLoop idle, 0 executor jobs, clock=<VirtualClock")
    loop.close()
    assert repr(loop).startswith("<VirtualClockLoop closed,")


def test_executor_threads_are_joined_without_a_clock_jump() -> None:
    # asyncio.run-style shutdown waits for the default executor (with a timeout timer on
    # Python 3.12+); the wait must hold the clock, or that timer would fire at once.
    clock = VirtualClock()

    async def main() -> str:
        return await asyncio.to_thread(str, 5)

    assert run(main, clock=clock) == "5"
    assert clock.statistics().jumps == 0


async def test_hold_clock_lets_outside_work_beat_a_virtual_timer(
    virtual_clock: VirtualClock,
) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualClockLoop)
    done = asyncio.Event()
    thread = threading.Thread(target=lambda: loop.call_soon_threadsafe(done.set))
    with loop.hold_clock(), corral.move_on_after(60) as scope:
        # Without the hold, the idle loop would jump straight to the 60 s deadline.
        thread.start()
        await done.wait()
    thread.join()
    assert not scope.cancelled_caught
    assert loop.time() < 60
    with corral.move_on_after(60) as released:
        await asyncio.sleep(3600)  # released: virtual time jumps again
    assert released.cancelled_caught
