"""The plain-Python core logs with `logging` (training epochs, evaluation); these records
belong in the Dagster run log, where users watch a materialization's progress."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

CORE_LOGGER = "pinlanding_assets.core"


class _RunLogHandler(logging.Handler):
    def __init__(self, run_log) -> None:
        super().__init__(level=logging.INFO)
        self.run_log = run_log

    def emit(self, record: logging.LogRecord) -> None:
        write = getattr(self.run_log, record.levelname.lower(), self.run_log.info)
        write(record.getMessage())


@contextmanager
def core_logs_in_run_log(context) -> Iterator[None]:
    """While the block runs, INFO and above from the core go to `context.log` too."""
    core = logging.getLogger(CORE_LOGGER)
    handler = _RunLogHandler(context.log)
    previous_level = core.level
    core.addHandler(handler)
    if core.getEffectiveLevel() > logging.INFO:
        core.setLevel(logging.INFO)
    try:
        yield
    finally:
        core.removeHandler(handler)
        core.setLevel(previous_level)
