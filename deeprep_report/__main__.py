"""``python -m deeprep_report`` is the ``deeprep`` command."""

from deeprep_report.cli import entry

entry()
