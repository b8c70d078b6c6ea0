"""The runtime layer: channels, select, Go-style helpers and thread bridges.

Everything public here is re-exported from :mod:`corral`; import it from there.
"""

# The channel module first: it defines Channel, then loads the select cases and the
# ends it hands out, so those modules always find Channel complete, whichever module
# of this package is imported first.
from . import _channel as _channel
