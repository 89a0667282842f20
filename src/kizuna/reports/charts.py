"""Geometry of the report pages' inline SVG charts (the templates only draw what this gives).

Numbers come in as plain floats (percentages already multiplied by 100); ``None`` is a value
that is undefined and is drawn as a gap, never as 0.
"""

import math
from typing import Any

# A line chart of monthly values, in SVG user units.
LINE_WIDTH = 640
LINE_HEIGHT = 220
LINE_LEFT = 44  # room for the y labels
LINE_RIGHT = 30  # half a month label
LINE_TOP = 12
LINE_BOTTOM = 28  # room for the x labels


def _nice_ceiling(value: float) -> float:
    """A round upper bound for an axis: 1, 2, 2.5, 5 or 10 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def line_chart(
    labels: list[str],
    values: list[float | None],
    *,
    shown: list[str],
    top: float | None = None,
    suffix: str = "",
) -> dict[str, Any]:
    """One line over ``labels`` (months): ``values`` as numbers, ``shown`` as the text of each
    point. The y axis runs from 0 to ``top`` (default: a round number above the largest
    value); an undefined value breaks the line."""
    numbers = [value for value in values if value is not None]
    high = top if top is not None else _nice_ceiling(max(numbers, default=0.0))
    plot_width = LINE_WIDTH - LINE_LEFT - LINE_RIGHT
    plot_height = LINE_HEIGHT - LINE_TOP - LINE_BOTTOM
    count = max(len(labels), 1)
    step = plot_width / (count - 1) if count > 1 else 0.0

    def x_of(index: int) -> float:
        return LINE_LEFT + (index * step if count > 1 else plot_width / 2)

    def y_of(number: float) -> float:
        return LINE_TOP + plot_height - min(max(number, 0.0), high) / high * plot_height

    segments: list[list[str]] = [[]]
    points = []
    for index, (label, value, text) in enumerate(zip(labels, values, shown, strict=True)):
        if value is None:
            if segments[-1]:
                segments.append([])
            continue
        x, y = x_of(index), y_of(value)
        segments[-1].append(f"{x:.1f},{y:.1f}")
        points.append({"x": f"{x:.1f}", "y": f"{y:.1f}", "label": label, "value": text})
    ticks = [
        {"y": f"{y_of(high * share):.1f}", "label": f"{high * share:g}{suffix}"}
        for share in (0.0, 0.5, 1.0)
    ]
    every = max(1, math.ceil(count / 6))
    x_labels = [
        {"x": f"{x_of(index):.1f}", "label": label}
        for index, label in enumerate(labels)
        if (count - 1 - index) % every == 0  # counted back from the last, which is labelled
    ]
    return {
        "width": LINE_WIDTH,
        "height": LINE_HEIGHT,
        "left": LINE_LEFT,
        "right": LINE_WIDTH - LINE_RIGHT,
        "label_x": LINE_LEFT - 6,
        "x_label_y": LINE_HEIGHT - 8,
        "ticks": ticks,
        "x_labels": x_labels,
        "lines": [" ".join(segment) for segment in segments if segment],
        "points": points,
    }
