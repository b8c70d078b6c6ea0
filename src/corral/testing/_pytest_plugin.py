"""corral's pytest plugin: async tests on every event loop, virtual time, service checks.

Loaded automatically (``pytest11`` entry point) wherever corral is installed.

Async tests:
    An ``async def`` test runs when it is marked ``@pytest.mark.corral`` (on the test,
    its class or ``pytestmark``), or always with the ini option ``corral_mode = auto``
    unless another plugin claims it (marked ``anyio``, ``asyncio`` or ``trio``).
    Each such test is parametrized over event loops, one fresh loop per test:
    ``asyncio``, ``uvloop`` (when importable) and ``eager`` (asyncio with
    ``asyncio.eager_task_factory``, Python 3.12+). A test that requests the
    ``virtual_clock`` fixture, directly or through another fixture, runs on
    ``virtual`` and ``virtual-eager`` (3.12+) instead: a :class:`VirtualClockLoop` with
    autojump. ``@pytest.mark.corral_loops("asyncio", "virtual")`` picks the loops for
    one test; a loop that this interpreter lacks is reported as skipped.

Async fixtures:
    Coroutine functions and async generators used as fixtures by those tests run on the
    test's loop. Each stage (the setup up to ``yield``, the teardown after it) runs in
    its own task, sharing one ``contextvars`` context with the test: a context variable
    set in a fixture is visible to the test, but a task group or cancel scope must not
    stay open across the ``yield``. Async fixtures must be function-scoped, since every
    test has a loop of its own.

Simulated tests:
    A test that requests the ``simulation`` fixture runs on corral's simulation loop
    once per seed (ids ``sim-0``, ``sim-1``, ...), each run reordering ready tasks as
    its seed decides; ``@pytest.mark.simulation(seeds=..., jitter=..., faults=[...])``
    sets the seeds, timer jitter and fault rules.

Service tests:
    With the ini option ``corral_check_services = true``, a test marked ``postgres``,
    ``redis`` or ``nats`` is skipped when that service does not accept connections at
    ``CORRAL_POSTGRES_URL`` / ``CORRAL_REDIS_URL`` / ``CORRAL_NATS_URL`` (local
    defaults otherwise), or fails when ``CORRAL_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
import sys
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from typing import Any

import pytest

from ._clock import VirtualClock
from ._loop import VirtualClockLoop
from ._services import SERVICES, service_address, skip_or_fail, unreachable
from ._sim import Simulation
from ._sim_faults import FaultRule

__all__ = ()

#: Every loop kind a test can run on, in the order the ids appear.
LOOP_KINDS = ("asyncio", "uvloop", "eager", "virtual", "virtual-eager")
_REAL_KINDS = ("asyncio", "uvloop", "eager")
_VIRTUAL_KINDS = ("virtual", "virtual-eager")

_RUNNER = "_corral_runner"
#: Loop ids of simulated tests: the prefix and the seed.
_SIM_PREFIX = "sim-"
_DEFAULT_SEEDS = 10
#: Markers of other async test plugins; auto mode leaves the tests they claim alone.
_OTHER_RUNNERS = ("anyio", "asyncio", "trio")
_MODES = ("strict", "auto")
_SERVICE_CHECK_TIMEOUT = 2.0
_unreachable_key = pytest.StashKey[dict[tuple[str, int], str | None]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "corral_mode",
        "which async tests corral runs: 'strict' (only those marked "
        "@pytest.mark.corral) or 'auto' (every async def test)",
        default="strict",
    )
    parser.addini(
        "corral_check_services",
        "skip tests marked postgres/redis/nats when the service is unreachable "
        "(fail instead when CORRAL_REQUIRE_SERVICES=1)",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    mode = config.getini("corral_mode")
    if mode not in _MODES:
        raise pytest.UsageError(f"corral_mode must be 'strict' or 'auto', got {mode!r}")
    config.addinivalue_line(
        "markers",
        "corral: run this async test on corral's event loops (asyncio, uvloop, eager, "
        "or the virtual-clock loops when it requests virtual_clock)",
    )
    config.addinivalue_line(
        "markers",
        "corral_loops(*kinds): run this async test only on the given loop kinds, "
        f"among {', '.join(LOOP_KINDS)}",
    )
    config.addinivalue_line(
        "markers",
        "simulation(seeds=10, jitter=0.0, faults=[]): for an async test that requests the "
        "simulation fixture: the seeds to run it under, timer jitter and fault rules",
    )
    config.stash[_unreachable_key] = {}


def unavailable(kind: str) -> str | None:
    """Why loop ``kind`` cannot run in this interpreter, or ``None`` if it can."""
    if kind.endswith("eager") and sys.version_info < (3, 12):
        return f"the {kind} loop needs Python 3.12+ (asyncio.eager_task_factory)"
    if kind == "uvloop" and importlib.util.find_spec("uvloop") is None:
        return "the uvloop loop needs uvloop installed"
    return None


def _is_async_test(function: object) -> bool:
    inner = getattr(getattr(function, "hypothesis", None), "inner_test", function)
    return inspect.iscoroutinefunction(inner)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> None:
    if not (collector.istestfunction(obj, name) and _is_async_test(obj)):
        return
    own_marks = getattr(obj, "pytestmark", ())

    def marked(marker: str) -> bool:
        return collector.get_closest_marker(marker) is not None or any(
            mark.name == marker for mark in own_marks
        )

    if marked("corral") or (
        collector.config.getini("corral_mode") == "auto" and not any(map(marked, _OTHER_RUNNERS))
    ):
        pytest.mark.usefixtures(_RUNNER)(obj)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if _RUNNER not in metafunc.fixturenames or not _is_async_test(metafunc.function):
        return
    metafunc.parametrize("corral_loop", _loop_params(metafunc), indirect=True)


def _loop_params(metafunc: pytest.Metafunc) -> list[Any]:
    virtual = "virtual_clock" in metafunc.fixturenames
    marker = metafunc.definition.get_closest_marker("corral_loops")
    if "simulation" in metafunc.fixturenames:
        if marker is not None:
            pytest.fail(
                f"{metafunc.definition.nodeid}: a test that requests simulation runs on the "
                "simulation loop once per seed; it cannot also take corral_loops()",
                pytrace=False,
            )
        seeds = _simulation_options(metafunc.definition)[0]
        return [pytest.param(f"{_SIM_PREFIX}{seed}", id=f"{_SIM_PREFIX}{seed}") for seed in seeds]
    if marker is None:
        kinds = _VIRTUAL_KINDS if virtual else _REAL_KINDS
        return [pytest.param(kind, id=kind) for kind in kinds if unavailable(kind) is None]
    where = metafunc.definition.nodeid
    kinds = marker.args
    if not kinds:
        pytest.fail(f"{where}: corral_loops() needs at least one loop kind", pytrace=False)
    for kind in kinds:
        if kind not in LOOP_KINDS:
            pytest.fail(
                f"{where}: unknown loop kind {kind!r} in corral_loops(); "
                f"choose among {', '.join(LOOP_KINDS)}",
                pytrace=False,
            )
        if virtual and kind not in _VIRTUAL_KINDS:
            pytest.fail(
                f"{where}: requests virtual_clock, so it can only run on "
                f"{' or '.join(_VIRTUAL_KINDS)}, not {kind!r}",
                pytrace=False,
            )
    if len(set(kinds)) != len(kinds):
        pytest.fail(f"{where}: corral_loops{kinds!r} names a loop twice", pytrace=False)
    params = []
    for kind in kinds:
        reason = unavailable(kind)
        marks = () if reason is None else (pytest.mark.skip(reason=reason),)
        params.append(pytest.param(kind, id=kind, marks=marks))
    return params


@pytest.fixture
def corral_loop(request: pytest.FixtureRequest) -> str:
    """The kind of event loop the running async test is on.

    One of ``"asyncio"``, ``"uvloop"``, ``"eager"``, ``"virtual"``, ``"virtual-eager"``;
    the test's id carries it too (``test_x[uvloop]``). Only async tests that corral
    runs have one.
    """
    kind: str | None = getattr(request, "param", None)
    if kind is None:
        pytest.fail(
            f"{request.node.nodeid} requested corral_loop, which only async tests run by "
            "corral have: mark the test @pytest.mark.corral or set corral_mode = auto",
            pytrace=False,
        )
    return kind


@pytest.fixture
def virtual_clock() -> VirtualClock:
    """The :class:`VirtualClock` of the test's loop, with autojump on.

    Requesting it makes the test run on the virtual-clock loops (``virtual`` and, on
    Python 3.12+, ``virtual-eager``). Starts at ``0.0``.
    """
    return VirtualClock()


@pytest.fixture
def simulation(corral_loop: str, request: pytest.FixtureRequest) -> Simulation:
    """The :class:`~corral.testing.Simulation` the async test runs in.

    Requesting it runs the test on corral's simulation loop, once per seed: by default
    seeds ``0`` to ``9`` (test ids ``sim-0`` ... ``sim-9``). Mark the test
    ``@pytest.mark.simulation(seeds=range(100), jitter=0.01, faults=[...])`` to choose
    the seeds, timer jitter and :class:`~corral.testing.FaultRule` s. The fixture gives
    the recorded :attr:`~corral.testing.Simulation.schedule` and ``statistics()``; a
    test that also requests ``virtual_clock`` gets the simulation's clock.
    """
    if not corral_loop.startswith(_SIM_PREFIX):
        pytest.fail(
            f"{request.node.nodeid} requested simulation outside a simulated async test",
            pytrace=False,
        )
    _, jitter, faults = _simulation_options(request.node)
    clock = (
        request.getfixturevalue("virtual_clock")
        if ("virtual_clock" in request.fixturenames)
        else None
    )
    seed = int(corral_loop.removeprefix(_SIM_PREFIX))
    return Simulation(seed=seed, jitter=jitter, faults=faults, clock=clock)


def _simulation_options(node: pytest.Item) -> tuple[list[int], float, list[FaultRule]]:
    marker = node.get_closest_marker("simulation")
    options: dict[str, Any] = {} if marker is None else dict(marker.kwargs)
    if marker is not None and marker.args:
        pytest.fail(
            f"{node.nodeid}: simulation() takes keyword arguments only (seeds=, jitter=, faults=)",
            pytrace=False,
        )
    unknown = set(options) - {"seeds", "jitter", "faults"}
    if unknown:
        pytest.fail(
            f"{node.nodeid}: simulation() got unknown options {sorted(unknown)}; "
            "it takes seeds=, jitter= and faults=",
            pytrace=False,
        )
    seeds = options.get("seeds", range(_DEFAULT_SEEDS))
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = range(seeds)
    seeds = list(seeds)
    if not seeds or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds):
        pytest.fail(
            f"{node.nodeid}: simulation(seeds=...) must be a count or a non-empty list of "
            f"ints, got {options.get('seeds')!r}",
            pytrace=False,
        )
    return seeds, options.get("jitter", 0.0), list(options.get("faults", ()))


@pytest.fixture
def _corral_runner(corral_loop: str, request: pytest.FixtureRequest) -> Iterator[asyncio.Runner]:
    """The asyncio runner that runs the test and its async fixtures on one loop."""
    factory: Callable[[], asyncio.AbstractEventLoop]
    if corral_loop.startswith(_SIM_PREFIX):
        sim: Simulation = request.getfixturevalue("simulation")
        factory = sim.new_loop
    elif corral_loop in _VIRTUAL_KINDS:
        clock: VirtualClock = request.getfixturevalue("virtual_clock")
        factory = functools.partial(VirtualClockLoop, clock)
    elif corral_loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    eager = corral_loop.endswith("eager")

    def new_loop() -> asyncio.AbstractEventLoop:
        loop = factory()
        if eager and sys.version_info >= (3, 12):
            loop.set_task_factory(asyncio.eager_task_factory)
        return loop

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.get_loop()
        yield runner


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Generator[None, Any, Any]:
    func = fixturedef.func
    is_generator = inspect.isasyncgenfunction(func)
    if not (is_generator or inspect.iscoroutinefunction(func)):
        return (yield)
    if _RUNNER not in request.fixturenames:
        return (yield)
    if fixturedef.scope != "function":
        pytest.fail(
            f"async fixture {fixturedef.argname!r} has scope {fixturedef.scope!r}; corral "
            "gives every test its own event loop, so async fixtures must be function-scoped",
            pytrace=False,
        )

    def runner() -> asyncio.Runner:
        test_runner: asyncio.Runner = request.getfixturevalue(_RUNNER)
        if test_runner.get_loop().is_running():
            pytest.fail(
                f"async fixture {fixturedef.argname!r} was requested while the test's loop "
                "is running (request.getfixturevalue inside an async test); request it as "
                "an argument instead",
                pytrace=False,
            )
        return test_runner

    def set_up(**kwargs: Any) -> Any:
        return runner().run(_bind(func, request)(**kwargs))

    def set_up_and_tear_down(**kwargs: Any) -> Iterator[Any]:
        test_runner = runner()
        generator = _bind(func, request)(**kwargs)
        first = test_runner.run(_next_or(generator, _EXHAUSTED))
        if first is _EXHAUSTED:
            raise ValueError(f"{fixturedef.argname} did not yield a value")
        yield first
        if test_runner.run(_next_or(generator, _EXHAUSTED)) is not _EXHAUSTED:
            test_runner.run(generator.aclose())
            pytest.fail(
                f"async fixture {fixturedef.argname!r} has more than one 'yield'",
                pytrace=False,
            )

    fixturedef.func = set_up_and_tear_down if is_generator else set_up
    try:
        return (yield)
    finally:
        fixturedef.func = func


_EXHAUSTED = object()


async def _next_or(generator: AsyncGenerator[Any, None], default: object) -> Any:
    try:
        return await anext(generator)
    except StopAsyncIteration:
        return default


def _bind(func: Callable[..., Any], request: Any) -> Callable[..., Any]:
    """``func``, bound to the test's class instance when it is a fixture method."""
    instance = request.instance
    if (
        instance is not None
        and inspect.ismethod(func)
        and isinstance(instance, type(func.__self__))
    ):
        bound: Callable[..., Any] = func.__func__.__get__(instance)
        return bound
    return func


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    runner: asyncio.Runner | None = pyfuncitem.funcargs.get(_RUNNER)  # type: ignore[assignment]
    if runner is None or not _is_async_test(pyfuncitem.obj):
        return None
    function = pyfuncitem.obj
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}
    hypothesis = getattr(function, "hypothesis", None)
    if hypothesis is None:
        runner.run(function(**kwargs))
        return True
    # A @given test: hypothesis calls inner_test once per example; run each on the loop.
    inner = hypothesis.inner_test

    def run_example(*args: Any, **example: Any) -> None:
        runner.run(inner(*args, **example))

    hypothesis.inner_test = run_example
    try:
        function(**kwargs)
    finally:
        hypothesis.inner_test = inner
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not item.config.getini("corral_check_services"):
        return
    cache = item.config.stash[_unreachable_key]
    for name in SERVICES:
        if item.get_closest_marker(name) is None:
            continue
        host, port = service_address(name)
        if (host, port) not in cache:
            cache[host, port] = unreachable(host, port, _SERVICE_CHECK_TIMEOUT)
        problem = cache[host, port]
        if problem is not None:
            skip_or_fail(name, host, port, problem)
