"""Plots of spikes and traces (matplotlib, the optional `plots` extra).

`import eqsnn` does not import this sub-package, and importing it does not import
matplotlib: that happens at the first plot, and a missing matplotlib raises an
`ImportError` that says how to install it (`pip install "eqsnn[plots]"`, or
`pip install -e ".[plots]"` in a clone). Every function draws into the `ax` it is given
(or a new figure), returns the matplotlib `Axes`, and never shows or saves: no global
state is changed beyond the figure it creates.
"""

from ._histogram import first_spike_histogram as first_spike_histogram
from ._raster import raster as raster
from ._traces import traces as traces
