"""Optimization primitives: retries, limiters, batching and caching for asyncio code."""
