"""The study runner: config → stage graph → cached, resumable execution → results → report."""

from synthmed.study.config import PROFILES, StudyConfig, load_study_config
from synthmed.study.executor import LocalExecutor, make_executor
from synthmed.study.expand import expand_study
from synthmed.study.runner import run_study

__all__ = ["PROFILES", "StudyConfig", "load_study_config", "LocalExecutor", "make_executor",
           "expand_study", "run_study"]
