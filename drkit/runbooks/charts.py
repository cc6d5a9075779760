"""Small inline SVG charts for notebooks and audit reports (no plotting dependency)."""

from __future__ import annotations

from html import escape


def bar_chart(title: str, labels: list[str], values: list[float], unit: str,
              width: int = 640, bar_height: int = 18) -> str:
    """Horizontal bars, one per label: readable at a glance in a notebook or a report."""
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
               unit: str, width: int = 720, height: int = 260) -> str:
    """Lines over time (e.g. RPO and RTO per drill), gaps where a value is missing."""
    colours = ["#4a7ab5", "#c0504d", "#9bbb59", "#8064a2"]
    present = [v for values in series.values() for v in values if v is not None]
    top = max(present, default=0) or 1
    left, bottom, right = 60, height - 40, width - 20
    step = (right - left) / max(len(labels) - 1, 1)
    parts = [f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>',
             f'<text x="{left - 6}" y="34" text-anchor="end">{top:,.0f} {escape(unit)}</text>',
             f'<text x="{left - 6}" y="{bottom}" text-anchor="end">0</text>']
    for index, (name, values) in enumerate(series.items()):
        colour = colours[index % len(colours)]
        points = [f"{left + i * step:.1f},{bottom - (bottom - 30) * v / top:.1f}"
                  for i, v in enumerate(values) if v is not None]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{" ".join(points)}"/>')
        parts.append(f'<text x="{right - 150}" y="{16 + 14 * index}" fill="{colour}">'
                     f"{escape(name)}</text>")
    for i, label in enumerate(labels):
        if len(labels) <= 12 or i % (len(labels) // 12 + 1) == 0:
            parts.append(f'<text x="{left + i * step:.1f}" y="{bottom + 16}" '
                         f'text-anchor="middle" font-size="10">{escape(label)}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif" font-size="12">{"".join(parts)}</svg>')
