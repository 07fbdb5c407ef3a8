"""Running hivebus in production: service levels, anomalies, scaling signals, a health score.

Per task type it measures time to assignment and to completion (p95, p99) against targets,
the success ratio and the error budget's burn rate over a short and a long window; it learns
a baseline of durations and failure rates and flags departures from it; it tells an external
autoscaler which capability set needs more or fewer agents (``events.scale.up|down``).
Breaches and anomalies are alerts
(``events.alert.<severity>``), firing then resolved, one per cause across core replicas. The
entry point names the ``ProductionPlugin`` class: each core builds its own instance.
"""

from .baseline import Baseline
from .plugin import NAME, ProductionPlugin
from .scaling import Pressure, Scaler, Signal, pressures
from .settings import AnomalySettings, Objective, ProductionSettings, ScalingSettings
from .slo import Breach, ServiceLevel, burn_rate
from .windows import Outcomes, Samples, percentile

__all__ = [
    "NAME",
    "AnomalySettings",
    "Baseline",
    "Breach",
    "Objective",
    "Outcomes",
    "Pressure",
    "ProductionPlugin",
    "ProductionSettings",
    "Samples",
    "Scaler",
    "ScalingSettings",
    "ServiceLevel",
    "Signal",
    "burn_rate",
    "percentile",
    "pressures",
]
