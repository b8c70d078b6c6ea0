"""A lost update that plain asyncio never shows, found and fixed with the simulation loop.

Two tasks change one balance with a read, a round trip and a write. On the plain loop
the fee task always reads after the deposit wrote; the simulation loop tries other
orders of the ready tasks, seed by seed, and finds the one that loses the deposit. The
seed replays it exactly, and a lock makes every seed agree.

Run it with ``python examples/lost_update.py``. It prints::

    plain asyncio: 140
    first failing seed: 1 -> 90 (1 deviations from the plain order)
    replayed from JSON: 90
    with a lock, 100 seeds give: [140]
"""

from __future__ import annotations

import asyncio

from corral.testing import Schedule, Simulation, simulate


async def day(locked: bool) -> int:
    """Deposit 50 and charge a 10 fee on a balance of 100, concurrently."""
    balances = {"alice": 100}
    lock = asyncio.Lock()

    async def read() -> int:
        await asyncio.sleep(0)  # the store's round trip
        return balances["alice"]

    async def write(amount: int) -> None:
        await asyncio.sleep(0)
        balances["alice"] = amount

    async def change(delta: int) -> None:
        if locked:
            async with lock:
                await write(await read() + delta)
        else:
            await write(await read() + delta)

    async def fee() -> None:
        await asyncio.sleep(0)  # looks the fee up first
        await change(-10)

    async with asyncio.TaskGroup() as group:
        group.create_task(change(50))
        group.create_task(fee())
    return balances["alice"]


def main() -> None:
    print("plain asyncio:", asyncio.run(day(False)))
    for seed in range(100):
        simulation = Simulation(seed=seed)
        balance = simulation.run(day, False)
        if balance != 140:
            deviations = simulation.schedule.deviations
            print(
                f"first failing seed: {seed} -> {balance} ({deviations} deviations "
                "from the plain order)"
            )
            saved = simulation.schedule.to_json()
            print("replayed from JSON:", simulate(day, False, schedule=Schedule.from_json(saved)))
            break
    print("with a lock, 100 seeds give:", sorted({simulate(day, True, seed=s) for s in range(100)}))


if __name__ == "__main__":
    main()
