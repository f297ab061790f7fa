"""Data sets for spiking networks: Yin-Yang, toy problems, 8x8 digits and spike intervals.

Every loader returns a [`eqsnn.datasets.Dataset`][] whose features lie in `[0, 1]`;
encode them into input spikes with [`eqsnn.encode.spatio_temporal_encode`][].
"""

from ._dataset import Dataset as Dataset
from ._dataset import batches as batches
from ._dataset import train_test_split as train_test_split
from ._digits import digits as digits
from ._intervals import interval_lengths as interval_lengths
from ._intervals import intervals as intervals
from ._toy import BIAS_VALUE as BIAS_VALUE
from ._toy import YINYANG_CLASS_NAMES as YINYANG_CLASS_NAMES
from ._toy import circle as circle
from ._toy import linear as linear
from ._toy import yinyang as yinyang
