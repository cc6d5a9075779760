"""Small inline SVG charts for notebooks and audit reports (no plotting dependency)."""

from __future__ import annotations

from html import escape

# Sizes in pixels: a notebook's width, and a report's.
_BAR_CHART_WIDTH, _BAR_HEIGHT = 640, 18
_LINE_CHART_WIDTH, _LINE_CHART_HEIGHT = 720, 260


def bar_chart(title: str, labels: list[str], values: list[float], unit: str) -> str:
    """Horizontal bars, one per label: readable at a glance in a notebook or a report."""
    width, bar_height = _BAR_CHART_WIDTH, _BAR_HEIGHT
    top = max(values, default=0) or 1
    label_width = 220
    height = 30 + bar_height * len(values) + 10
    rows = []
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 30 + index * bar_height
        length = (width - label_width - 90) * value / top
        rows.append(
            f'<text x="{label_width - 6}" y="{y + bar_height - 6}" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect x="{label_width}" y="{y + 2}" width="{length:.1f}" height="{bar_height - 4}"'
            f' fill="#4a7ab5"/>'
            f'<text x="{label_width + length + 4:.1f}" y="{y + bar_height - 6}">'
            f"{value:,.1f} {escape(unit)}</text>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="12"><text x="0" y="16" font-weight="bold">'
            f'{escape(title)}</text>{"".join(rows)}</svg>')


def line_chart(title: str, labels: list[str], series: dict[str, list[float | None]],
               unit: str, objectives: dict[str, float] | None = None) -> str:
    """Lines over time (e.g. RPO per drill), each value also a dot (so one drill shows),
    gaps where a value is missing, and objectives as dashed horizontal lines."""
    width, height = _LINE_CHART_WIDTH, _LINE_CHART_HEIGHT
    colours = ["#4a7ab5", "#c0504d", "#9bbb59", "#8064a2"]
    objectives = objectives or {}
    present = [v for values in series.values() for v in values if v is not None]
    top = max([*present, *objectives.values()], default=0) * 1.1 or 1
    left, bottom, right = 70, height - 40, width - 60  # room for the last label
    step = (right - left) / max(len(labels) - 1, 1)

    def y(value: float) -> float:
        return bottom - (bottom - 30) * value / top

    def x(index: int) -> float:
        return left + index * step if len(labels) > 1 else (left + right) / 2

    parts = [f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>',
             f'<text x="{left - 6}" y="34" text-anchor="end">{top:,.1f} {escape(unit)}</text>',
             f'<text x="{left - 6}" y="{bottom}" text-anchor="end">0</text>']
    for name, value in objectives.items():
        parts.append(f'<line class="objective" x1="{left}" y1="{y(value):.1f}" x2="{right}" '
                     f'y2="{y(value):.1f}" stroke="#cf222e" stroke-dasharray="6 4"/>'
                     f'<text x="{right}" y="{y(value) - 4:.1f}" text-anchor="end" '
                     f'fill="#cf222e">{escape(name)} {value:,.1f} {escape(unit)}</text>')
    for index, (name, values) in enumerate(series.items()):
        colour = colours[index % len(colours)]
        points = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
        line = " ".join(f"{a:.1f},{b:.1f}" for a, b in points)
        parts.append(f'<polyline class="series" fill="none" stroke="{colour}" '
                     f'stroke-width="2" points="{line}"/>')
        parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>'
                  for a, b in points]
        parts.append(f'<text x="{left + 8}" y="{30 + 14 * index}" fill="{colour}">'
                     f"{escape(name)}</text>")
    for i, label in enumerate(labels):
        if len(labels) <= 8 or i % (len(labels) // 8 + 1) == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{bottom + 16}" text-anchor="middle" '
                         f'font-size="10">{escape(label)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'
            f'{"".join(parts)}</svg>')
