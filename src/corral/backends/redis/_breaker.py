"""RedisBreakerStore: circuit breaker state in Redis, one atomic script per step."""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio

from ...optimize._breaker_store import BreakerAdmission, BreakerRules, CircuitState, CircuitView
from ._client import RedisStore, Script, key_arg

__all__ = ("RedisBreakerStore",)

# The whole state machine of corral.BreakerStore, for one circuit: a hash (KEYS[1]) with
# the state, generation, the server time it opened at, probes in flight and succeeded,
# and the window's counts; and a list (KEYS[2]) with the window's outcomes, oldest
# first: an outcome code (bit 0 failed, bit 1 slow), after its server time for a time
# window. Time is the server's (TIME): every process sharing a circuit reads one clock.
# ARGV: the step, the rules (an empty string for the window that is not used), then the
# step's own arguments. Reply: admitted, state, generation, retry_after, calls,
# failures, slow calls. A closed circuit admits without writing anything.
_CIRCUIT = Script(
    """
local circuit, window = KEYS[1], KEYS[2]
local step = ARGV[1]
local failure_rate, slow_rate = tonumber(ARGV[2]), tonumber(ARGV[3])
local minimum_calls = tonumber(ARGV[4])
local window_calls, window_seconds = tonumber(ARGV[5]), tonumber(ARGV[6])
local open_for, probes = tonumber(ARGV[7]), tonumber(ARGV[8])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000

local fields = redis.call('HMGET', circuit, 'state', 'generation', 'opened_at', 'in_flight',
    'succeeded', 'calls', 'failures', 'slow_calls')
local state = fields[1] or 'closed'
local numbers = {}
for i = 2, 8 do
    numbers[i] = tonumber(fields[i] or '0')
end
if (state ~= 'closed' and state ~= 'open' and state ~= 'half-open')
        or not (numbers[2] and numbers[3] and numbers[4] and numbers[5] and numbers[6]
                and numbers[7] and numbers[8]) then
    return redis.error_reply('CORRAL_BAD_STATE the key ' .. circuit ..
        ' does not hold a circuit breaker state; delete it or use another prefix')
end
local generation, opened_at, in_flight, succeeded = numbers[2], numbers[3], numbers[4], numbers[5]
local calls, failures, slow_calls = numbers[6], numbers[7], numbers[8]

local function count(code, sign)
    calls = calls + sign
    if code % 2 == 1 then failures = failures + sign end
    if code >= 2 then slow_calls = slow_calls + sign end
end

local function expire()
    if not window_seconds then return false end
    local horizon, dropped = now - window_seconds, false
    while true do
        local oldest = redis.call('LINDEX', window, 0)
        if not oldest then return dropped end
        local at, code = string.match(oldest, '^(%S+) (%d)$')
        if tonumber(at) > horizon then return dropped end
        redis.call('LPOP', window)
        count(tonumber(code), -1)
        dropped = true
    end
end

local function add(code)
    if window_seconds then
        expire()
        redis.call('RPUSH', window, string.format('%.17g', now) .. ' ' .. code)
    else
        redis.call('RPUSH', window, code)
        if redis.call('LLEN', window) > window_calls then
            count(tonumber(redis.call('LPOP', window)), -1)
        end
    end
    count(code, 1)
end

local function move_to(new_state)
    state = new_state
    generation = generation + 1
    in_flight, succeeded = 0, 0
    calls, failures, slow_calls = 0, 0, 0
    if new_state == 'open' then opened_at = now end
    redis.call('DEL', window)
end

local function save()
    redis.call('HSET', circuit, 'state', state, 'generation', generation,
        'opened_at', string.format('%.17g', opened_at), 'in_flight', in_flight,
        'succeeded', succeeded, 'calls', calls, 'failures', failures, 'slow_calls', slow_calls)
end

local function reply(admitted, retry_after)
    return {admitted, state, generation, string.format('%.17g', retry_after), calls,
        failures, slow_calls}
end

local function view()
    if state == 'half-open' then
        return {0, state, generation, '0', succeeded, 0, 0}
    end
    local retry_after = 0
    if state == 'open' then retry_after = math.max(0, opened_at + open_for - now) end
    return reply(0, retry_after)
end

if step == 'acquire' then
    if state == 'closed' then return reply(1, 0) end
    if state == 'open' then
        local left = opened_at + open_for - now
        if left > 0 then return reply(0, left) end
        move_to('half-open')
    elseif in_flight >= probes then
        return reply(0, 0)
    end
    in_flight = in_flight + 1
    save()
    return reply(1, 0)
elseif step == 'record' then
    if tonumber(ARGV[9]) == generation then
        local failed, slow = ARGV[10] == '1', ARGV[11] == '1'
        if state == 'closed' then
            local code = 0
            if failed then code = code + 1 end
            if slow then code = code + 2 end
            add(code)
            if calls >= minimum_calls and (failures >= failure_rate * calls
                    or slow_calls >= slow_rate * calls) then
                local counted = {calls, failures, slow_calls}
                move_to('open')
                save()
                return {0, state, generation, string.format('%.17g', open_for), counted[1],
                    counted[2], counted[3]}
            end
            save()
            return reply(0, 0)
        elseif state == 'half-open' then
            in_flight = in_flight - 1
            if failed or slow then
                move_to('open')
            else
                succeeded = succeeded + 1
                if succeeded >= probes then move_to('closed') end
            end
            save()
        end
    end
    return view()
elseif step == 'release' then
    if tonumber(ARGV[9]) == generation and state == 'half-open' then
        in_flight = in_flight - 1
        save()
    end
    return view()
elseif step == 'force' then
    move_to(ARGV[9])
    save()
    return view()
end
if expire() then save() end
return view()
"""
)

_STATES = {state.value: state for state in CircuitState}


class RedisBreakerStore(RedisStore):
    """Circuit breaker state in Redis, shared by every breaker (in any process) of a name.

    A :class:`~corral.BreakerStore`: breakers in several processes given the same store
    prefix and the same ``name`` share one circuit, so when one process sees the
    dependency fail, every process stops calling it::

        breaker = corral.CircuitBreaker(name="payments", store=RedisBreakerStore(url))

    Each step (admit, record, release, force, view) is one round trip: a Lua script that
    applies the state machine described in :class:`~corral.BreakerStore` atomically. The
    circuit of ``name`` is a hash at ``prefix + name`` and its window a list at
    ``prefix + name + ":window"``. Times (the open period, a time-based window) are read
    from the Redis server's clock, the one clock every process agrees on; the ``now``
    the breaker passes is not used. Breakers sharing a circuit should use the same rules:
    each step applies the rules of the breaker that takes it.

    Cancellation: a step cancelled during its round trip happened completely or not at
    all (the script is atomic), as the protocol requires.

    Thread-safety: like the redis-py asyncio client it uses, use it from one event loop.

    Args:
        client_or_url: a ``redis.asyncio.Redis`` client, borrowed (you close it), or a URL
            for a client the store opens and :meth:`aclose` closes.
        prefix: put before each circuit's name to make its Redis keys.

    Raises:
        ArgumentTypeError: an argument has the wrong type.
        InvalidArgumentError: ``prefix`` is empty, or the URL cannot be parsed.
    """

    __slots__ = ("_prefix",)

    def __init__(
        self, client_or_url: redis.asyncio.Redis | str, prefix: str = "corral:breaker:"
    ) -> None:
        self._prefix = key_arg(prefix, "prefix")
        super().__init__(client_or_url, f"circuit breaker prefix {prefix!r}")

    @property
    def prefix(self) -> str:
        """What the Redis keys of every circuit start with."""
        return self._prefix

    async def acquire(self, name: str, rules: BreakerRules, now: float) -> BreakerAdmission:
        """Admit one call or say why not (see :meth:`corral.BreakerStore.acquire`).

        Raises:
            BackendUnavailable: Redis could not be reached.
            BrokenResourceError: the circuit's keys hold what this store did not write.
        """
        reply = await self._step(name, rules, "acquire")
        return BreakerAdmission(bool(reply[0]), _STATES[reply[1]], reply[2], reply[3])

    async def record(
        self,
        name: str,
        rules: BreakerRules,
        now: float,
        generation: int,
        *,
        failed: bool,
        slow: bool,
    ) -> CircuitView:
        """Record an outcome and apply its transition (see :meth:`corral.BreakerStore.record`).

        Raises:
            BackendUnavailable: Redis could not be reached.
            BrokenResourceError: the circuit's keys hold what this store did not write.
        """
        return _view(await self._step(name, rules, "record", generation, int(failed), int(slow)))

    async def release(self, name: str, rules: BreakerRules, generation: int) -> None:
        """Free the probe slot of a call that ended without an outcome.

        Raises:
            BackendUnavailable: Redis could not be reached.
            BrokenResourceError: the circuit's keys hold what this store did not write.
        """
        await self._step(name, rules, "release", generation)

    async def force(
        self, name: str, rules: BreakerRules, now: float, state: CircuitState
    ) -> CircuitView:
        """Put the circuit in ``state`` now (see :meth:`corral.BreakerStore.force`).

        Raises:
            BackendUnavailable: Redis could not be reached.
            BrokenResourceError: the circuit's keys hold what this store did not write.
        """
        return _view(await self._step(name, rules, "force", state.value))

    async def view(self, name: str, rules: BreakerRules, now: float) -> CircuitView:
        """The circuit now, with outcomes that left a time window dropped.

        Raises:
            BackendUnavailable: Redis could not be reached.
            BrokenResourceError: the circuit's keys hold what this store did not write.
        """
        return _view(await self._step(name, rules, "view"))

    async def _step(self, name: str, rules: BreakerRules, step: str, *args: int | str) -> Any:
        circuit = self._prefix + name
        with self._errors:
            reply = await _CIRCUIT.run(
                self._client,
                (circuit, circuit + ":window"),
                step,
                rules.failure_rate,
                rules.slow_rate,
                rules.minimum_calls,
                "" if rules.window_calls is None else rules.window_calls,
                "" if rules.window_seconds is None else rules.window_seconds,
                rules.open_for,
                rules.half_open_probes,
                *args,
            )
        admitted, state, generation, retry_after, calls, failures, slow_calls = cast(
            list[Any], reply
        )
        return (
            admitted,
            state if isinstance(state, str) else state.decode(),
            generation,
            float(retry_after),
            calls,
            failures,
            slow_calls,
        )

    def __repr__(self) -> str:
        return f"<RedisBreakerStore {self._prefix!r} at {self._where()}>"


def _view(reply: tuple[Any, ...]) -> CircuitView:
    return CircuitView(_STATES[reply[1]], reply[2], reply[3], reply[4], reply[5], reply[6])
