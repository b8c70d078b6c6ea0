"""The pytest plugin, driven through pytester in a scratch project."""

from __future__ import annotations

import importlib.util
import socket
import sys

import pytest

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
HAS_EAGER = sys.version_info >= (3, 12)
REAL_IDS = ["asyncio"] + ["uvloop"] * HAS_UVLOOP + ["eager"] * HAS_EAGER
VIRTUAL_IDS = ["virtual"] + ["virtual-eager"] * HAS_EAGER


def _project(pytester: pytest.Pytester, *ini_lines: str) -> None:
    # The inner runs keep their tests in file order (their output is matched in order),
    # also where pytest-randomly is installed.
    lines = "\n".join(ini_lines)
    pytester.makeini(f"[pytest]\naddopts = -p no:randomly\nfilterwarnings = error\n{lines}\n")


def test_strict_mode_runs_only_marked_tests(pytester: pytest.Pytester) -> None:
    _project(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.corral
        async def test_marked(corral_loop):
            await asyncio.sleep(0)

        async def test_unmarked():
            pass

        @pytest.mark.corral
        class TestGroup:
            async def test_in_marked_class(self):
                await asyncio.sleep(0)
        """
    )
    result = pytester.runpytest("-v")
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == 2 * len(REAL_IDS)
    assert outcomes["failed"] == 1
    result.stdout.fnmatch_lines(["*test_unmarked FAILED*"])
    for loop in REAL_IDS:
        result.stdout.fnmatch_lines(
            [f"*::test_marked[[]{loop}[]] PASSED*", f"*::test_in_marked_class[[]{loop}[]] PASSED*"]
        )


def test_auto_mode_runs_every_async_test(pytester: pytest.Pytester) -> None:
    _project(pytester, "corral_mode = auto")
    pytester.makepyfile(
        """
        import asyncio

        async def test_one():
            await asyncio.sleep(0)

        def test_sync():
            pass
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=len(REAL_IDS) + 1)
    result.stdout.fnmatch_lines(["*::test_sync PASSED*"])
    for loop in REAL_IDS:
        result.stdout.fnmatch_lines([f"*::test_one[[]{loop}[]] PASSED*"])


def test_each_id_gets_its_kind_of_loop(pytester: pytest.Pytester) -> None:
    _project(pytester, "corral_mode = auto")
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        from corral.testing import VirtualClockLoop

        seen = []

        async def test_loop(corral_loop):
            loop = asyncio.get_running_loop()
            seen.append(corral_loop)
            assert not isinstance(loop, VirtualClockLoop)
            assert (type(loop).__module__.split(".")[0] == "uvloop") == (corral_loop == "uvloop")
            eager = loop.get_task_factory() is getattr(asyncio, "eager_task_factory", 0)
            assert eager == (corral_loop == "eager")

        async def test_virtual(virtual_clock, corral_loop):
            loop = asyncio.get_running_loop()
            assert isinstance(loop, VirtualClockLoop) and loop.clock is virtual_clock
            eager = loop.get_task_factory() is getattr(asyncio, "eager_task_factory", 0)
            assert eager == (corral_loop == "virtual-eager")
            await asyncio.sleep(30)
            assert virtual_clock.time() == 30

        def test_all_seen():
            assert seen == REAL_IDS
        """.replace("REAL_IDS", repr(REAL_IDS))
    )
    result = pytester.runpytest("-v", "-p", "no:randomly")
    result.assert_outcomes(passed=len(REAL_IDS) + len(VIRTUAL_IDS) + 1)
    for loop in VIRTUAL_IDS:
        result.stdout.fnmatch_lines([f"*::test_virtual[[]{loop}[]] PASSED*"])


def test_virtual_clock_through_another_fixture_selects_virtual_loops(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester, "corral_mode = auto")
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        def ticks(virtual_clock):
            return virtual_clock

        async def test_uses_ticks(ticks):
            await asyncio.sleep(2)
            assert ticks.time() == 2
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=len(VIRTUAL_IDS))
    result.stdout.fnmatch_lines(["*::test_uses_ticks[[]virtual[]] PASSED*"])


def test_corral_loops_marker_picks_the_loops(pytester: pytest.Pytester) -> None:
    _project(pytester, "corral_mode = auto")
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.corral_loops("asyncio")
        async def test_only_asyncio(corral_loop):
            assert corral_loop == "asyncio"

        @pytest.mark.corral_loops("virtual", "asyncio")
        async def test_virtual_without_the_fixture(corral_loop):
            await asyncio.sleep(0)

        @pytest.mark.corral_loops("virtual")
        async def test_virtual_only(virtual_clock):
            await asyncio.sleep(3600)
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*::test_only_asyncio[[]asyncio[]] PASSED*",
            "*::test_virtual_without_the_fixture[[]virtual[]] PASSED*",
            "*::test_virtual_without_the_fixture[[]asyncio[]] PASSED*",
            "*::test_virtual_only[[]virtual[]] PASSED*",
        ]
    )


@pytest.mark.skipif(HAS_EAGER, reason="eager loops exist on Python 3.12+")
def test_loops_this_python_lacks_are_skipped_with_a_reason(pytester: pytest.Pytester) -> None:
    _project(pytester, "corral_mode = auto")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.corral_loops("asyncio", "eager")
        async def test_both():
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*the eager loop needs Python 3.12+*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('corral_loops("trio")', "unknown loop kind 'trio' in corral_loops()"),
        ("corral_loops()", "corral_loops() needs at least one loop kind"),
        ('corral_loops("asyncio", "asyncio")', "names a loop twice"),
    ],
)
def test_bad_corral_loops_markers_are_collection_errors(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    _project(pytester, "corral_mode = auto")
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        async def test_x():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{message}*"])


def test_virtual_clock_on_a_real_loop_is_a_collection_error(pytester: pytest.Pytester) -> None:
    _project(pytester, "corral_mode = auto")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.corral_loops("virtual", "uvloop")
        async def test_x(virtual_clock):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*requests virtual_clock, so it can only run on virtual*"])


def test_bad_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    _project(pytester, "corral_mode = sometimes")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*corral_mode must be 'strict' or 'auto', got 'sometimes'*"])


def test_corral_loop_outside_corral_tests_explains_itself(pytester: pytest.Pytester) -> None:
    _project(pytester)
    pytester.makepyfile("def test_sync(corral_loop): pass")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*only async tests run by corral have*"])


def test_async_fixtures_run_on_the_tests_loop(pytester: pytest.Pytester) -> None:
    _project(pytester, "corral_mode = auto")
    pytester.makepyfile(
        """
        import asyncio
        import contextvars
        import pytest

        user = contextvars.ContextVar("user")
        log = []

        @pytest.fixture
        async def loop_of_fixture():
            await asyncio.sleep(0)
            return asyncio.get_running_loop()

        @pytest.fixture
        async def resource(loop_of_fixture):
            user.set("alice")
            log.append("open")
            yield {"loop": asyncio.get_running_loop(), "task": asyncio.current_task()}
            await asyncio.sleep(0)
            log.append("close")

        async def test_uses_them(loop_of_fixture, resource):
            assert loop_of_fixture is asyncio.get_running_loop()
            assert resource["loop"] is asyncio.get_running_loop()
            assert resource["task"] is not asyncio.current_task()
            assert user.get() == "alice"
            log.append("test")

        def test_order():
            per_loop = ["open", "test", "close"]
            assert log == per_loop * NLOOPS
        """.replace("NLOOPS", str(len(REAL_IDS)))
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=len(REAL_IDS) + 1)


def test_async_fixture_methods_bind_to_the_test_instance(pytester: pytest.Pytester) -> None:
    _project(pytester, "corral_mode = auto")
    pytester.makepyfile(
        """
        import pytest

        class TestWithState:
            @pytest.fixture
            async def marker(self):
                self.prepared = True
                yield self
                assert self.prepared

            @pytest.mark.corral_loops("asyncio")
            async def test_same_instance(self, marker):
                assert marker is self and self.prepared
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_async_fixture_errors_are_reported(pytester: pytest.Pytester) -> None:
    _project(pytester, "corral_mode = auto")
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="module")
        async def shared():
            return 1

        @pytest.fixture
        async def twice():
            yield 1
            yield 2

        @pytest.fixture
        async def never():
            if False:
                yield

        @pytest.mark.corral_loops("asyncio")
        async def test_shared(shared):
            pass

        @pytest.mark.corral_loops("asyncio")
        async def test_twice(twice):
            pass

        @pytest.mark.corral_loops("asyncio")
        async def test_never(never):
            pass

        @pytest.mark.corral_loops("asyncio")
        async def test_dynamic(request):
            request.getfixturevalue("twice")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*async fixture 'shared' has scope 'module'*must be function-scoped*",
            "*async fixture 'twice' has more than one 'yield'*",
            "*never did not yield a value*",
            "*requested while the test's loop is running*",
        ],
        consecutive=False,
    )


def test_async_fixtures_of_tests_corral_does_not_run_are_left_alone(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        async def thing():
            return 1

        def test_sync(thing):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*requested an async fixture 'thing'*"])


def test_hypothesis_examples_run_on_the_loop(pytester: pytest.Pytester) -> None:
    _project(pytester, "corral_mode = auto")
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        from hypothesis import given, settings, strategies as st

        examples = []

        @pytest.mark.corral_loops("virtual")
        @settings(max_examples=25)
        @given(st.integers(min_value=0, max_value=10**9))
        async def test_sleep(milliseconds):
            seconds = milliseconds / 1000
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.sleep(seconds)
            assert loop.time() - start == pytest.approx(seconds)
            examples.append(seconds)

        def test_count():
            assert len(examples) == 25
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_service_markers_skip_or_fail(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("CORRAL_REDIS_URL", f"redis://127.0.0.1:{closed}/0")
    monkeypatch.delenv("CORRAL_REQUIRE_SERVICES", raising=False)
    _project(pytester, "corral_check_services = true", "markers = redis: needs redis")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.redis
        def test_needs_redis():
            raise AssertionError("must not run without redis")

        @pytest.mark.redis
        async def test_needs_redis_too():
            raise AssertionError("must not run without redis")

        def test_plain():
            pass
        """
    )
    skipped = pytester.runpytest("-rs")
    skipped.assert_outcomes(passed=1, skipped=2)
    skipped.stdout.fnmatch_lines([f"*redis is not reachable at 127.0.0.1:{closed}*"])

    monkeypatch.setenv("CORRAL_REQUIRE_SERVICES", "1")
    failed = pytester.runpytest()
    failed.assert_outcomes(passed=1, errors=2)
    failed.stdout.fnmatch_lines(["*CORRAL_REQUIRE_SERVICES=1 requires it*"])


def test_service_checks_are_off_unless_enabled(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_REDIS_URL", "redis://127.0.0.1:1/0")
    _project(pytester, "markers = redis: a marker of some other project")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.redis
        def test_their_own_redis_marker():
            pass
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_auto_mode_leaves_other_plugins_tests_alone(pytester: pytest.Pytester) -> None:
    _project(pytester, "corral_mode = auto")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.anyio
        async def test_for_anyio(anyio_backend):
            pass

        async def test_for_corral(corral_loop):
            pass
        """
    )
    result = pytester.runpytest("-v", "-p", "anyio")
    result.assert_outcomes(passed=2 + len(REAL_IDS))
    result.stdout.fnmatch_lines(
        ["*::test_for_anyio[[]asyncio[]] PASSED*", "*::test_for_anyio[[]trio[]] PASSED*"],
        consecutive=False,
    )
