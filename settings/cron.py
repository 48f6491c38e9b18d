"""The recurrence of an Auto Scaling scheduled action: five-field Unix cron, checked field by field.

Hand-written because the project keeps no cron library and the check is small: Auto Scaling's `Recurrence`
is plain Unix cron (minute hour day-of-month month day-of-week; no seconds, no year, no `?`/`L`/`W`/`#` of
EventBridge's dialect), and a mistake must name the field and what it allows rather than fail at deploy.
"""

from __future__ import annotations

from dataclasses import dataclass

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i

    def value(self, text: str) -> int:
        upper = text.upper()
        if upper in self.names:
            return self.low + self.names.index(upper)
        if not text.isdigit():
            allowed = f"{self.low}-{self.high}" + (f" or {self.names[0]}-{self.names[-1]}" if self.names else "")
            raise ValueError(f"{self.name} '{text}' is not a number ({allowed})")
        number = int(text)
        if not self.low <= number <= self.high:
            raise ValueError(f"{self.name} {number} is outside {self.low}-{self.high}")
        return number


FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, MONTHS),
    _Field("day-of-week", 0, 7, DAYS),  # 0 and 7 are Sunday
)


def cron_problem(expression: str) -> str | None:
    """None if `expression` is a valid five-field cron, else what is wrong with it (naming the field)."""
    parts = expression.split()
    if len(parts) != len(FIELDS):
        return f"has {len(parts)} field(s); use 5: minute hour day-of-month month day-of-week, e.g. '30 7 * * 1-5'"
    for field, part in zip(FIELDS, parts, strict=True):
        for item in part.split(","):
            try:
                _check_item(field, item)
            except ValueError as error:
                return str(error)
    return None


def _check_item(field: _Field, item: str) -> None:
    base, slash, step = item.partition("/")
    if slash and not (step.isdigit() and int(step) >= 1):
        raise ValueError(f"{field.name} step '{step}' must be a whole number of at least 1")
    if base == "*":
        return
    low, dash, high = base.partition("-")
    if not low:
        raise ValueError(f"{field.name} '{item}' is empty or malformed; use a value, a range a-b, '*' or a step '/n'")
    first = field.value(low)
    if dash:
        last = field.value(high)
        if first > last:
            raise ValueError(f"{field.name} range '{base}' runs backwards; write it low-high")
    elif slash:
        raise ValueError(f"{field.name} '{item}' steps from a single value; use '*/{step}' or a range a-b/{step}")
