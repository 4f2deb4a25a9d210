"""Fill a pack's reply templates: ``{slot}``, ``{slot.field}`` and ``{result.field}``.

Only names are looked up — no expressions, no format specs — so a template (or a value the user typed)
can never run code or reach anything but the flow's own slots and the tool's result.
"""

from __future__ import annotations

import re
from typing import Any

FIELD = re.compile(r"\{([a-z][a-z0-9_]*(?:\.[a-z0-9][a-z0-9_]*)*)\}")


def show(value: Any) -> str:
    """A value as a reply says it: amounts as "250.00 EUR", lists one item after another."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if set(value) >= {"value", "currency"}:
            return f"{value['value']} {value['currency']}"
        return ", ".join(show(v) for v in value.values() if v not in (None, ""))
    if isinstance(value, list):
        return "; ".join(show(v) for v in value)
    return str(value).replace("_", " ") if isinstance(value, str) and re.fullmatch(r"[a-z]+(_[a-z]+)+", value) else str(value)


def lookup(path: str, slots: dict[str, Any], result: dict[str, Any] | None) -> Any:
    head, *rest = path.split(".")
    value: Any = result if head == "result" else slots.get(head)
    for part in rest:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def render(template: str | None, slots: dict[str, Any], result: dict[str, Any] | None = None) -> str:
    if not template:
        return ""
    return FIELD.sub(lambda m: show(lookup(m.group(1), slots, result)), template)


def render_value(template: Any, slots: dict[str, Any]) -> Any:
    """A tool argument: a template that is exactly one field keeps the field's type (an int stays an int)."""
    if isinstance(template, str):
        m = FIELD.fullmatch(template)
        if m:
            value = lookup(m.group(1), slots, None)
            return value if not isinstance(value, dict) else show(value)
        return render(template, slots)
    if isinstance(template, dict):
        return {k: render_value(v, slots) for k, v in template.items()}
    if isinstance(template, list):
        return [render_value(v, slots) for v in template]
    return template
