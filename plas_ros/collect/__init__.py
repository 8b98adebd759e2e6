"""Data collection: behaviour policies (scripted, trained checkpoints, schedules) and the in-process collector."""
from plas_ros.collect.collector import collect  # noqa: F401
