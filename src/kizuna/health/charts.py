"""Small server-rendered SVG charts of health: the list's sparkline and a score's history.

Scores live on a fixed 0–100 scale, so both charts draw that scale (a flat line at 80 and one at
30 must not look alike). A day without a score is a gap in the line, never a fall to 0.
"""

from collections.abc import Sequence
from datetime import date

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

BAND_COLOURS = {"good": "#27ae60", "watch": "#f39c12", "at_risk": "#c0392b"}
BAND_FILLS = {"good": "#e3f5ea", "watch": "#fdf3e0", "at_risk": "#fbe7e4"}


def _segments(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive defined points (a None breaks the line)."""
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for x, y in points:
        if y is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((x, y))
    if current:
        runs.append(current)
    return runs


def _polylines(runs: list[list[tuple[float, float]]], colour: str, width: float) -> str:
    parts = []
    for run in runs:
        if len(run) == 1:
            x, y = run[0]
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{width}" fill="{colour}"/>')
        else:
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{colour}" '
                f'stroke-width="{width}" stroke-linejoin="round"/>'
            )
    return "".join(parts)


def sparkline(values: Sequence[float | None], *, band: str = "", width: int = 90) -> SafeString:
    """An inline SVG line of daily scores (oldest first) on 0–100; empty string if none."""
    if not any(value is not None for value in values):
        return mark_safe("")
    height = 20
    step = width / max(len(values) - 1, 1)
    points = [
        (index * step, None if value is None else height - 1 - (height - 2) * value / 100)
        for index, value in enumerate(values)
    ]
    colour = BAND_COLOURS.get(band, "#7f8c8d")
    shown = [value for value in values if value is not None]
    label = _("Score over the last {days} days: from {first} to {last}").format(
        days=len(values), first=round(shown[0]), last=round(shown[-1])
    )
    body = _polylines(_segments(points), colour, 1.5)
    return mark_safe(  # noqa: S308 - numbers and a escaped label only
        f'<svg class="sparkline" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="{escape(label)}">{body}</svg>'
    )


def history_chart(
    days: Sequence[date],
    scores: Sequence[float | None],
    *,
    good_from: float,
    watch_from: float,
    width: int = 640,
    height: int = 180,
) -> SafeString:
    """A score history on 0–100 with the bands as background and the first/last day as labels."""
    if not days:
        return mark_safe("")
    left, right, top, bottom = 28, 8, 6, 20
    plot_w, plot_h = width - left - right, height - top - bottom

    def y_of(score: float) -> float:
        return top + plot_h * (1 - max(0.0, min(100.0, score)) / 100)

    first, last = days[0], days[-1]
    span = max((last - first).days, 1)
    points: list[tuple[float, float | None]] = []
    previous: date | None = None
    for day, score in zip(days, scores, strict=True):
        if previous is not None and (day - previous).days > 1:
            points.append((0.0, None))  # days without a score in between: a gap
        points.append(
            (left + plot_w * (day - first).days / span, None if score is None else y_of(score))
        )
        previous = day
    bands = [
        ("good", 100.0, good_from),
        ("watch", good_from, watch_from),
        ("at_risk", watch_from, 0),
    ]
    parts = [
        f'<rect x="{left}" y="{y_of(high):.1f}" width="{plot_w}" '
        f'height="{max(y_of(low) - y_of(high), 0):.1f}" fill="{BAND_FILLS[band]}" '
        f'data-band="{band}"/>'
        for band, high, low in bands
    ]
    parts.extend(
        f'<text x="{left - 4}" y="{y_of(tick) + 4:.1f}" text-anchor="end" '
        f'font-size="10" fill="#6b7280">{tick}</text>'
        for tick in (0, 50, 100)
    )
    parts.append(
        f'<text x="{left}" y="{height - 4}" font-size="10" fill="#6b7280">{first.isoformat()}</text>'
    )
    parts.append(
        f'<text x="{width - right}" y="{height - 4}" font-size="10" text-anchor="end" '
        f'fill="#6b7280">{last.isoformat()}</text>'
    )
    parts.append(_polylines(_segments(points), "#1f2937", 2))
    label = _("Health score from {start} to {end}").format(
        start=first.isoformat(), end=last.isoformat()
    )
    return format_html(
        '<svg class="health-history" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-label="{}" preserveAspectRatio="none">{}</svg>',
        width,
        height,
        label,
        mark_safe("".join(parts)),  # noqa: S308 - numbers, ISO dates and constant names only
    )
