"""jobs.toml: reading and validating it into job specifications for the engine."""

from .edit import remove_job_table
from .loader import load
from .problems import ConfigError, Problem
from .reload import Reloader
from .spec import Config, JobSpec

__all__ = ["Config", "ConfigError", "JobSpec", "Problem", "Reloader", "load", "remove_job_table"]
