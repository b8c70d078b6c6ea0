"""The core layer: promises, combinators, structured concurrency and cancellation.

Everything public here is re-exported from :mod:`corral`; import it from there.
"""
