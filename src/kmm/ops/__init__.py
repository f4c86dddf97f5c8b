"""Operating a running bot: its Prometheus metrics (and, to come, its control API)."""

from kmm.ops.metrics import MetricsServer, engine_metrics

__all__ = ["MetricsServer", "engine_metrics"]
