"""The mathematics of unit statistics, below every stage that uses it: pure numpy, no TensorFlow.

``moments`` and ``histogram`` are the mergeable accumulators (the extract stage
fills them, the store keeps them, shards merge them exactly); ``units`` holds the
definitions that turn them into reported numbers (dead units, saturation).
"""

from deeprep_report.stats.histogram import Histogram
from deeprep_report.stats.moments import Moments
from deeprep_report.stats.units import BOUNDED, RELU_FAMILY, saturation_thresholds, unit_stats

__all__ = ["BOUNDED", "RELU_FAMILY", "Histogram", "Moments", "saturation_thresholds", "unit_stats"]
