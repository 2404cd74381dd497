"""Check results and the verdict a scheduled job acts on: one status word, counts, the exit code, the line.

The verdict line printed on stdout, ``summary.md``, the report's banner and
the exit code all come from one :class:`Verdict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

PASS, FAIL, NOT_EVALUATED = "pass", "fail", "not evaluated"


@dataclass(frozen=True)
class CheckResult:
    rule: str
    model: str
    dataset: str
    layer: str | None
    value: float | None
    threshold: float | None
    severity: str
    status: str
    detail: str


def one_line(text: object) -> str:
    """``text`` on one line: whitespace and unprintable characters (newlines, U+2028, controls) become spaces,
    so a name or path from someone's run folder cannot break a line of output (stdout, summary.md)."""
    return "".join(" " if ch.isspace() or not ch.isprintable() else ch for ch in str(text))


@dataclass(frozen=True)
class Verdict:
    """PASS (every check evaluated and passed), WARN (only warn-severity checks failed, or a check could not be
    evaluated) or FAIL (a fail-severity check failed)."""

    status: str
    failed: int
    warnings: int
    not_evaluated: int
    passed: int

    def exit_code(self, fail_on: str) -> int:
        """1 when the run should fail the job: the status is FAIL, or (``warn``) FAIL or WARN — so the word
        printed is always the one the exit code acted on."""
        if fail_on == "never":
            return 0
        return int(self.status == "FAIL" or (fail_on == "warn" and self.status == "WARN"))

    def line(self, where: str) -> str:
        """``FAIL 2 checks failed, 3 warnings — outputs/nightly/report.html``, always one line (a control
        character in a path read from someone's run folder becomes a space)."""
        return f"{self.status} {self.counts()} — {one_line(where)}"

    def counts(self, with_passed: bool = False) -> str:
        """``2 checks failed, 3 warnings[, 9 passed][, 1 not evaluated]``."""
        parts = [f"{self.failed} check{'s' if self.failed != 1 else ''} failed",
                 f"{self.warnings} warning{'s' if self.warnings != 1 else ''}"]
        if with_passed:
            parts.append(f"{self.passed} passed")
        if self.not_evaluated:
            parts.append(f"{self.not_evaluated} not evaluated")
        return ", ".join(parts)


def verdict(results: Sequence[CheckResult]) -> Verdict:
    failed = sum(r.status == FAIL and r.severity == "fail" for r in results)
    warnings = sum(r.status == FAIL and r.severity == "warn" for r in results)
    not_evaluated = sum(r.status == NOT_EVALUATED for r in results)
    passed = sum(r.status == PASS for r in results)
    status = "FAIL" if failed else ("WARN" if warnings or not_evaluated else "PASS")
    return Verdict(status, failed, warnings, not_evaluated, passed)


def verdict_of(summary: dict[str, Any]) -> Verdict:
    """The verdict stored in a summary's ``checks`` block."""
    return Verdict(**summary["checks"]["verdict"])


def results_of(summary: dict[str, Any]) -> list[CheckResult]:
    """The check results stored in a summary's ``checks`` block."""
    return [CheckResult(**result) for result in summary["checks"]["results"]]


def results_table(results: Sequence[CheckResult]) -> list[str]:
    """Every check result as aligned text lines, those that did not pass first (``check --dry-run``: what
    summary.md would show, and the passes, without writing it). Names are made one line each."""
    header = ("status", "severity", "rule", "model × dataset", "layer", "value", "threshold", "detail")
    order = sorted(results, key=lambda r: r.status == PASS)
    rows = [header] + [(status_word(r), r.severity, r.rule,
                        f"{one_line(r.model)} × {one_line(r.dataset)}", one_line(r.layer or "–"), number_text(r.value),
                        number_text(r.threshold), one_line(r.detail)) for r in order]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return ["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths)), row[-1]]).rstrip() for row in rows]


def status_word(result: CheckResult) -> str:
    """``FAIL`` (a failed fail-severity check), ``warn``, ``not evaluated`` or ``pass``: one word per result."""
    if result.status != FAIL:
        return result.status
    return "FAIL" if result.severity == "fail" else "warn"


def number_text(value: float | None) -> str:
    """A check's value or threshold as printed in summary.md and by ``check --dry-run``."""
    return "–" if value is None else f"{value:.4g}"
