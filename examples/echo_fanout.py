"""A server and many clients in one structured program, with limits and deadlines.

A task group starts a loopback echo server and waits until it listens (``tg.start``),
then 20 clients talk to it through ``corral.all`` with at most 5 connections at once,
the whole exchange bounded by ``fail_after``. Cancelling the group stops the server.
Nothing leaves this machine: the server listens on 127.0.0.1 on a free port.

Run it with ``python examples/echo_fanout.py``. It prints::

    server listening: True
    20 replies, in order: True
    at most 5 clients at once
    first reply: b'hello 0'
    server stopped with the group
"""

from __future__ import annotations

import asyncio

import corral

CLIENTS = 20
LIMIT = 5


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo one line back, then close."""
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def serve(*, task_status: corral.TaskStatus[int] = corral.TASK_STATUS_IGNORED) -> None:
    """Listen on a free loopback port, report it, and serve until cancelled."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        task_status.started(server.sockets[0].getsockname()[1])
        await server.serve_forever()


async def main() -> None:
    active = peak = 0

    async def client(port: int, number: int) -> bytes:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"hello {number}\n".encode())
            reply = await reader.readline()
            writer.close()
            await writer.wait_closed()
            return reply.strip()
        finally:
            active -= 1

    async with corral.TaskGroup() as tg:
        port = await tg.start(serve)
        print("server listening:", port > 0)
        with corral.fail_after(10):
            replies = await corral.all(
                (client(port, number) for number in range(CLIENTS)), limit=LIMIT
            )
        print(
            f"{len(replies)} replies, in order:",
            replies == [f"hello {number}".encode() for number in range(CLIENTS)],
        )
        print(f"at most {peak} clients at once")
        print("first reply:", replies[0])
        tg.cancel(reason="all clients served")
    print("server stopped with the group")


if __name__ == "__main__":
    asyncio.run(main())
