"""What the daemon tells operators: Prometheus metrics, health probes, structured logs."""

from casewatch.telemetry.logging import configure_logging, get_logger
from casewatch.telemetry.loop_metrics import LoopMetrics
from casewatch.telemetry.metrics import Telemetry

__all__ = ["LoopMetrics", "Telemetry", "configure_logging", "get_logger"]
