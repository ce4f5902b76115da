"""Alerts: hook commands, webhooks and healthcheck pings when a job's occurrence ends."""

from .delivery import Alerts, HookFailure
from .occurrence import Occurrence

__all__ = ["Alerts", "HookFailure", "Occurrence"]
