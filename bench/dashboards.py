"""Render the Grafana dashboards' panels as pictures from a Prometheus's data (matplotlib).

    python bench/dashboards.py --prometheus http://127.0.0.1:9090 --minutes 10 --out docs/images

bench/gameday.py calls `render` at the end of a game day (--render), which is how the pictures in
the README were made: what on-call would have seen during that run. Each panel is drawn from
its own queries (query_range over the window); a stat panel shows its last value.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "deploy" / "grafana"

QueryRange = Callable[[str, float, float, float], list[dict[str, Any]]]


def legend(fmt: str, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip()
    return text or ",".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"


def scale(unit: str, value: float) -> tuple[float, str]:
    if unit == "percentunit":
        return value * 100, "%"
    if unit == "s":
        return value * 1000, "ms"
    return value, {"reqps": "req/s"}.get(unit, "")


def render(query_range: QueryRange, start: float, end: float, out: Path, marks: list[tuple[float, str]] = (),
           ) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    step = max(1.0, (end - start) / 240)
    written = []
    for path in sorted(GRAFANA.glob("*.json")):
        board = json.loads(path.read_text())
        panels = board["panels"]
        cols = 3
        rows = math.ceil(len(panels) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 5.2, rows * 2.9), squeeze=False)
        fig.suptitle(f"{board['title']}  ({datetime.fromtimestamp(start, UTC):%H:%M}-"
                     f"{datetime.fromtimestamp(end, UTC):%H:%M} UTC, game day)", fontsize=13)
        for ax, panel in zip(axes.flat, panels, strict=False):
            unit = panel["fieldConfig"]["defaults"]["unit"]
            ax.set_title(panel["title"], fontsize=9)
            ax.tick_params(labelsize=7)
            drawn = 0
            for target in panel["targets"]:
                for series in query_range(target["expr"], start, end, step)[:8]:
                    xs = [(float(t) - start) / 60 for t, _ in series["values"]]
                    ys = [scale(unit, float(v))[0] for _, v in series["values"]]
                    ys = [y if math.isfinite(y) else float("nan") for y in ys]
                    if panel["type"] == "stat":
                        last = next((y for y in reversed(ys) if not math.isnan(y)), float("nan"))
                        ax.text(0.5, 0.55 - 0.25 * drawn, f"{last:.3f}{scale(unit, 0)[1]}",
                                ha="center", va="center", fontsize=20, transform=ax.transAxes)
                        ax.text(0.5, 0.3 - 0.25 * drawn, legend(target["legendFormat"], series["metric"]),
                                ha="center", fontsize=8, transform=ax.transAxes)
                    else:
                        ax.plot(xs, ys, linewidth=1, label=legend(target["legendFormat"], series["metric"])[:40])
                    drawn += 1
            if panel["type"] == "stat":
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                for at, _label in marks:
                    ax.axvline((at - start) / 60, color="grey", linewidth=0.6, linestyle=":")
                ax.set_xlabel("minutes", fontsize=7)
                ax.set_ylabel(scale(unit, 0)[1], fontsize=7)
                if drawn:
                    ax.legend(fontsize=6, loc="upper left")
            if not drawn:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", color="grey", transform=ax.transAxes)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        if marks:
            fig.text(0.01, 0.005, "dotted lines: " + ", ".join(f"{(at - start) / 60:.1f} min {label}"
                                                               for at, label in marks), fontsize=7)
        fig.tight_layout(rect=(0, 0.02, 1, 0.97))
        target_path = out / f"dashboard-{path.stem}.png"
        fig.savefig(target_path, dpi=80)
        plt.close(fig)
        written.append(target_path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = parser.parse_args()

    def query_range(expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        body = httpx.get(f"{args.prometheus}/api/v1/query_range",
                         params={"query": expr, "start": start, "end": end, "step": step}, timeout=60).json()
        return list(body["data"]["result"]) if body["status"] == "success" else []

    end = time.time()
    for path in render(query_range, end - args.minutes * 60, end, Path(args.out)):
        print(path)


if __name__ == "__main__":
    main()
