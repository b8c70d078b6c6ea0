"""corral: asynchronous programming end to end, on asyncio.

The everyday API lives here; see the guide at ``docs/`` for each topic.

The core (promises, combinators, task groups, cancellation) is imported with
``corral``; each further layer (the runtime: channels, select, thread bridges) is
imported the first time one of its names is used, so ``import corral`` stays light as
corral grows. ``from corral import Channel`` and ``corral.Channel`` work as usual.
"""

import importlib
import typing

from ._core._combinators import all as all
from ._core._combinators import all_keyed as all_keyed
from ._core._combinators import all_settled as all_settled
from ._core._combinators import any as any
from ._core._combinators import race as race
from ._core._faults import fault_point as fault_point
from ._core._hooks import INSTRUMENTS as INSTRUMENTS
from ._core._hooks import Instrument as Instrument
from ._core._outcome import Fulfilled as Fulfilled
from ._core._outcome import Outcome as Outcome
from ._core._outcome import Rejected as Rejected
from ._core._promise import Promise as Promise
from ._core._promise import PromiseState as PromiseState
from ._core._promise import PromiseStatistics as PromiseStatistics
from ._core._promise import Resolvers as Resolvers
from ._core._promise import set_unhandled_rejection_handler as set_unhandled_rejection_handler
from ._core._reason import CancelReason as CancelReason
from ._core._reason import CancelSource as CancelSource
from ._core._scope import CancelScope as CancelScope
from ._core._scope import CancelScopeStatistics as CancelScopeStatistics
from ._core._scope import current_effective_deadline as current_effective_deadline
from ._core._scope import fail_after as fail_after
from ._core._scope import fail_at as fail_at
from ._core._scope import move_on_after as move_on_after
from ._core._scope import move_on_at as move_on_at
from ._core._taskgroup import TASK_STATUS_IGNORED as TASK_STATUS_IGNORED
from ._core._taskgroup import TaskGroup as TaskGroup
from ._core._taskgroup import TaskGroupStatistics as TaskGroupStatistics
from ._core._taskgroup import TaskHandle as TaskHandle
from ._core._taskgroup import TaskStatus as TaskStatus
from ._core._token import CancelToken as CancelToken
from ._core._token import CancelTokenStatistics as CancelTokenStatistics
from ._version import __version__ as __version__
from .errors import AggregateError as AggregateError
from .errors import CorralError as CorralError

if typing.TYPE_CHECKING:
    from .backends._connect import connect as connect
    from .backends._connect import connect_read_model as connect_read_model
    from .channels._bridge import BridgeChannel as BridgeChannel
    from .channels._bridge import BridgeChannelStatistics as BridgeChannelStatistics
    from .channels._cases import SelectCase as SelectCase
    from .channels._cases import Selected as Selected
    from .channels._channel import Channel as Channel
    from .channels._channel import ChannelStatistics as ChannelStatistics
    from .channels._channel import ReceiveCase as ReceiveCase
    from .channels._channel import ReceiveEnd as ReceiveEnd
    from .channels._channel import SendCase as SendCase
    from .channels._channel import SendEnd as SendEnd
    from .channels._channel import receive_case as receive_case
    from .channels._channel import send_case as send_case
    from .channels._errgroup import ErrGroup as ErrGroup
    from .channels._errgroup import ErrGroupStatistics as ErrGroupStatistics
    from .channels._once import Once as Once
    from .channels._once import OnceStatistics as OnceStatistics
    from .channels._portal import BlockingPortal as BlockingPortal
    from .channels._portal import BlockingPortalStatistics as BlockingPortalStatistics
    from .channels._portal import start_blocking_portal as start_blocking_portal
    from .channels._select import DefaultCase as DefaultCase
    from .channels._select import EventCase as EventCase
    from .channels._select import FutureCase as FutureCase
    from .channels._select import TimeoutCase as TimeoutCase
    from .channels._select import default_case as default_case
    from .channels._select import event_case as event_case
    from .channels._select import future_case as future_case
    from .channels._select import select as select
    from .channels._select import timeout_case as timeout_case
    from .channels._selector import Selector as Selector
    from .channels._selector import SelectorStatistics as SelectorStatistics
    from .channels._threads import ThreadLimiter as ThreadLimiter
    from .channels._threads import ThreadLimiterStatistics as ThreadLimiterStatistics
    from .channels._threads import default_thread_limiter as default_thread_limiter
    from .channels._threads import from_thread as from_thread
    from .channels._threads import to_thread as to_thread
    from .channels._waitgroup import WaitGroup as WaitGroup
    from .channels._waitgroup import WaitGroupStatistics as WaitGroupStatistics
    from .optimize._adaptive import AdaptiveLimiter as AdaptiveLimiter
    from .optimize._adaptive import AdaptiveLimiterStatistics as AdaptiveLimiterStatistics
    from .optimize._adaptive import AdaptiveToken as AdaptiveToken
    from .optimize._adaptive_algorithms import AIMD as AIMD
    from .optimize._adaptive_algorithms import Gradient as Gradient
    from .optimize._adaptive_algorithms import LimitAlgorithm as LimitAlgorithm
    from .optimize._amap import AsyncMap as AsyncMap
    from .optimize._amap import amap as amap
    from .optimize._amap import map_all as map_all
    from .optimize._amap_run import AsyncMapStatistics as AsyncMapStatistics
    from .optimize._breaker import CircuitBreaker as CircuitBreaker
    from .optimize._breaker import CircuitBreakerStatistics as CircuitBreakerStatistics
    from .optimize._breaker import CircuitStateChange as CircuitStateChange
    from .optimize._breaker_store import BreakerAdmission as BreakerAdmission
    from .optimize._breaker_store import BreakerRules as BreakerRules
    from .optimize._breaker_store import BreakerStore as BreakerStore
    from .optimize._breaker_store import CircuitState as CircuitState
    from .optimize._breaker_store import CircuitView as CircuitView
    from .optimize._breaker_store import MemoryBreakerStore as MemoryBreakerStore
    from .optimize._breaker_store import SyncBreakerStore as SyncBreakerStore
    from .optimize._bulkhead import Bulkhead as Bulkhead
    from .optimize._bulkhead import BulkheadStatistics as BulkheadStatistics
    from .optimize._cache import CachedFunction as CachedFunction
    from .optimize._cache import CacheStatistics as CacheStatistics
    from .optimize._cache import cached as cached
    from .optimize._cache_store import CacheEntry as CacheEntry
    from .optimize._cache_store import CacheStore as CacheStore
    from .optimize._cache_store import MemoryCacheStore as MemoryCacheStore
    from .optimize._coalesce import Coalesced as Coalesced
    from .optimize._coalesce import Coalescer as Coalescer
    from .optimize._coalesce import CoalescerStatistics as CoalescerStatistics
    from .optimize._coalesce import coalesce as coalesce
    from .optimize._dataloader import DataLoader as DataLoader
    from .optimize._dataloader import DataLoaderStatistics as DataLoaderStatistics
    from .optimize._fallback import Fallback as Fallback
    from .optimize._fallback import FallbackStatistics as FallbackStatistics
    from .optimize._hedge import Hedge as Hedge
    from .optimize._hedge import HedgeStatistics as HedgeStatistics
    from .optimize._hedge import LatencyPercentile as LatencyPercentile
    from .optimize._hedge import LatencyPercentileStatistics as LatencyPercentileStatistics
    from .optimize._hedge import hedge as hedge
    from .optimize._limiter import Limiter as Limiter
    from .optimize._limiter import LimiterStatistics as LimiterStatistics
    from .optimize._policy import Policy as Policy
    from .optimize._policy import PolicyStatistics as PolicyStatistics
    from .optimize._policy import policy as policy
    from .optimize._pool import Pool as Pool
    from .optimize._pool import PoolStatistics as PoolStatistics
    from .optimize._ratelimit import AsyncRateLimitStore as AsyncRateLimitStore
    from .optimize._ratelimit import MemoryRateLimitStore as MemoryRateLimitStore
    from .optimize._ratelimit import RateLimiter as RateLimiter
    from .optimize._ratelimit import RateLimiterStatistics as RateLimiterStatistics
    from .optimize._ratelimit import RateLimitStore as RateLimitStore
    from .optimize._request_scope import RequestScope as RequestScope
    from .optimize._request_scope import RequestScopeStatistics as RequestScopeStatistics
    from .optimize._request_scope import request_scope as request_scope
    from .optimize._retry import Attempt as Attempt
    from .optimize._retry import AttemptInfo as AttemptInfo
    from .optimize._retry import Retry as Retry
    from .optimize._retry import Retrying as Retrying
    from .optimize._retry import RetryStatistics as RetryStatistics
    from .optimize._retry import retry as retry
    from .optimize._retry import retrying as retrying
    from .optimize._retry_budget import RetryBudget as RetryBudget
    from .optimize._retry_budget import RetryBudgetStatistics as RetryBudgetStatistics
    from .optimize._stream import Stream as Stream
    from .optimize._stream import StreamIterator as StreamIterator
    from .optimize._stream import StreamStatistics as StreamStatistics
    from .optimize._timeout import Timeout as Timeout
    from .optimize._timeout import TimeoutStatistics as TimeoutStatistics

# name -> the module that defines it, imported on first use (PEP 562)
_LAZY: dict[str, str] = {
    "AIMD": "corral.optimize._adaptive_algorithms",
    "AdaptiveLimiter": "corral.optimize._adaptive",
    "AdaptiveLimiterStatistics": "corral.optimize._adaptive",
    "AdaptiveToken": "corral.optimize._adaptive",
    "AsyncMap": "corral.optimize._amap",
    "AsyncMapStatistics": "corral.optimize._amap_run",
    "AsyncRateLimitStore": "corral.optimize._ratelimit",
    "Attempt": "corral.optimize._retry",
    "AttemptInfo": "corral.optimize._retry",
    "BlockingPortal": "corral.channels._portal",
    "BlockingPortalStatistics": "corral.channels._portal",
    "BreakerAdmission": "corral.optimize._breaker_store",
    "BreakerRules": "corral.optimize._breaker_store",
    "BreakerStore": "corral.optimize._breaker_store",
    "BridgeChannel": "corral.channels._bridge",
    "BridgeChannelStatistics": "corral.channels._bridge",
    "Bulkhead": "corral.optimize._bulkhead",
    "BulkheadStatistics": "corral.optimize._bulkhead",
    "CacheEntry": "corral.optimize._cache_store",
    "CacheStatistics": "corral.optimize._cache",
    "CacheStore": "corral.optimize._cache_store",
    "CachedFunction": "corral.optimize._cache",
    "Channel": "corral.channels._channel",
    "ChannelStatistics": "corral.channels._channel",
    "CircuitBreaker": "corral.optimize._breaker",
    "CircuitBreakerStatistics": "corral.optimize._breaker",
    "CircuitState": "corral.optimize._breaker_store",
    "CircuitStateChange": "corral.optimize._breaker",
    "CircuitView": "corral.optimize._breaker_store",
    "Coalesced": "corral.optimize._coalesce",
    "Coalescer": "corral.optimize._coalesce",
    "CoalescerStatistics": "corral.optimize._coalesce",
    "DataLoader": "corral.optimize._dataloader",
    "DataLoaderStatistics": "corral.optimize._dataloader",
    "DefaultCase": "corral.channels._select",
    "ErrGroup": "corral.channels._errgroup",
    "ErrGroupStatistics": "corral.channels._errgroup",
    "EventCase": "corral.channels._select",
    "Fallback": "corral.optimize._fallback",
    "FallbackStatistics": "corral.optimize._fallback",
    "FutureCase": "corral.channels._select",
    "Gradient": "corral.optimize._adaptive_algorithms",
    "Hedge": "corral.optimize._hedge",
    "HedgeStatistics": "corral.optimize._hedge",
    "LatencyPercentile": "corral.optimize._hedge",
    "LatencyPercentileStatistics": "corral.optimize._hedge",
    "LimitAlgorithm": "corral.optimize._adaptive_algorithms",
    "Limiter": "corral.optimize._limiter",
    "LimiterStatistics": "corral.optimize._limiter",
    "MemoryBreakerStore": "corral.optimize._breaker_store",
    "MemoryCacheStore": "corral.optimize._cache_store",
    "MemoryRateLimitStore": "corral.optimize._ratelimit",
    "Once": "corral.channels._once",
    "OnceStatistics": "corral.channels._once",
    "Policy": "corral.optimize._policy",
    "PolicyStatistics": "corral.optimize._policy",
    "Pool": "corral.optimize._pool",
    "PoolStatistics": "corral.optimize._pool",
    "RateLimitStore": "corral.optimize._ratelimit",
    "RateLimiter": "corral.optimize._ratelimit",
    "RateLimiterStatistics": "corral.optimize._ratelimit",
    "ReceiveCase": "corral.channels._channel",
    "ReceiveEnd": "corral.channels._channel",
    "RequestScope": "corral.optimize._request_scope",
    "RequestScopeStatistics": "corral.optimize._request_scope",
    "Retry": "corral.optimize._retry",
    "RetryBudget": "corral.optimize._retry_budget",
    "RetryBudgetStatistics": "corral.optimize._retry_budget",
    "RetryStatistics": "corral.optimize._retry",
    "Retrying": "corral.optimize._retry",
    "SelectCase": "corral.channels._cases",
    "Selected": "corral.channels._cases",
    "Selector": "corral.channels._selector",
    "SelectorStatistics": "corral.channels._selector",
    "SendCase": "corral.channels._channel",
    "SendEnd": "corral.channels._channel",
    "Stream": "corral.optimize._stream",
    "StreamIterator": "corral.optimize._stream",
    "StreamStatistics": "corral.optimize._stream",
    "SyncBreakerStore": "corral.optimize._breaker_store",
    "ThreadLimiter": "corral.channels._threads",
    "ThreadLimiterStatistics": "corral.channels._threads",
    "Timeout": "corral.optimize._timeout",
    "TimeoutCase": "corral.channels._select",
    "TimeoutStatistics": "corral.optimize._timeout",
    "WaitGroup": "corral.channels._waitgroup",
    "WaitGroupStatistics": "corral.channels._waitgroup",
    "amap": "corral.optimize._amap",
    "cached": "corral.optimize._cache",
    "coalesce": "corral.optimize._coalesce",
    "connect": "corral.backends._connect",
    "connect_read_model": "corral.backends._connect",
    "default_case": "corral.channels._select",
    "default_thread_limiter": "corral.channels._threads",
    "event_case": "corral.channels._select",
    "from_thread": "corral.channels._threads",
    "future_case": "corral.channels._select",
    "hedge": "corral.optimize._hedge",
    "map_all": "corral.optimize._amap",
    "policy": "corral.optimize._policy",
    "receive_case": "corral.channels._channel",
    "request_scope": "corral.optimize._request_scope",
    "retry": "corral.optimize._retry",
    "retrying": "corral.optimize._retry",
    "select": "corral.channels._select",
    "send_case": "corral.channels._channel",
    "start_blocking_portal": "corral.channels._portal",
    "timeout_case": "corral.channels._select",
    "to_thread": "corral.channels._threads",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'corral' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = (
    "AIMD",
    "INSTRUMENTS",
    "TASK_STATUS_IGNORED",
    "AdaptiveLimiter",
    "AdaptiveLimiterStatistics",
    "AdaptiveToken",
    "AggregateError",
    "AsyncMap",
    "AsyncMapStatistics",
    "AsyncRateLimitStore",
    "Attempt",
    "AttemptInfo",
    "BlockingPortal",
    "BlockingPortalStatistics",
    "BreakerAdmission",
    "BreakerRules",
    "BreakerStore",
    "BridgeChannel",
    "BridgeChannelStatistics",
    "Bulkhead",
    "BulkheadStatistics",
    "CacheEntry",
    "CacheStatistics",
    "CacheStore",
    "CachedFunction",
    "CancelReason",
    "CancelScope",
    "CancelScopeStatistics",
    "CancelSource",
    "CancelToken",
    "CancelTokenStatistics",
    "Channel",
    "ChannelStatistics",
    "CircuitBreaker",
    "CircuitBreakerStatistics",
    "CircuitState",
    "CircuitStateChange",
    "CircuitView",
    "Coalesced",
    "Coalescer",
    "CoalescerStatistics",
    "CorralError",
    "DataLoader",
    "DataLoaderStatistics",
    "DefaultCase",
    "ErrGroup",
    "ErrGroupStatistics",
    "EventCase",
    "Fallback",
    "FallbackStatistics",
    "Fulfilled",
    "FutureCase",
    "Gradient",
    "Hedge",
    "HedgeStatistics",
    "Instrument",
    "LatencyPercentile",
    "LatencyPercentileStatistics",
    "LimitAlgorithm",
    "Limiter",
    "LimiterStatistics",
    "MemoryBreakerStore",
    "MemoryCacheStore",
    "MemoryRateLimitStore",
    "Once",
    "OnceStatistics",
    "Outcome",
    "Policy",
    "PolicyStatistics",
    "Pool",
    "PoolStatistics",
    "Promise",
    "PromiseState",
    "PromiseStatistics",
    "RateLimitStore",
    "RateLimiter",
    "RateLimiterStatistics",
    "ReceiveCase",
    "ReceiveEnd",
    "Rejected",
    "RequestScope",
    "RequestScopeStatistics",
    "Resolvers",
    "Retry",
    "RetryBudget",
    "RetryBudgetStatistics",
    "RetryStatistics",
    "Retrying",
    "SelectCase",
    "Selected",
    "Selector",
    "SelectorStatistics",
    "SendCase",
    "SendEnd",
    "Stream",
    "StreamIterator",
    "StreamStatistics",
    "SyncBreakerStore",
    "TaskGroup",
    "TaskGroupStatistics",
    "TaskHandle",
    "TaskStatus",
    "ThreadLimiter",
    "ThreadLimiterStatistics",
    "Timeout",
    "TimeoutCase",
    "TimeoutStatistics",
    "WaitGroup",
    "WaitGroupStatistics",
    "__version__",
    "all",
    "all_keyed",
    "all_settled",
    "amap",
    "any",
    "cached",
    "coalesce",
    "connect",
    "connect_read_model",
    "current_effective_deadline",
    "default_case",
    "default_thread_limiter",
    "event_case",
    "fail_after",
    "fail_at",
    "fault_point",
    "from_thread",
    "future_case",
    "hedge",
    "map_all",
    "move_on_after",
    "move_on_at",
    "policy",
    "race",
    "receive_case",
    "request_scope",
    "retry",
    "retrying",
    "select",
    "send_case",
    "set_unhandled_rejection_handler",
    "start_blocking_portal",
    "timeout_case",
    "to_thread",
)
