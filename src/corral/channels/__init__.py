"""The runtime layer: channels, select, Go-style helpers and thread bridges.

Everything public here is re-exported from :mod:`corral`; import it from there.
"""
