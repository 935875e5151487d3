"""The report's matplotlib figures: the per-target fronts and the specialisation panel."""

from __future__ import annotations

from pathlib import Path

from ..records import MEASURED_MS, TEST_ACC, EvaluatedRow, SpecialisationRow


def _lam_norm(searched: list[EvaluatedRow]):
    """Colour scale of lambda: logarithmic above the smallest lambda > 0 (the grid is a log grid)."""
    from matplotlib.colors import SymLogNorm

    positive = [r["lam"] for r in searched if r["lam"] > 0]
    return SymLogNorm(linthresh=min(positive), vmin=0, vmax=max(positive)) if positive else None


KIND_STYLE = {  # plot style of the candidate kinds drawn as plain points
    "random": {"c": "0.7", "s": 25, "label": "random architectures"},
    "matched": {
        "marker": "D",
        "facecolors": "none",
        "edgecolors": "tab:orange",
        "s": 40,
        "label": "random, latency-matched to a searched one",
    },
    "baseline": {"marker": "X", "s": 90, "c": "k", "label": "trivial (no conv)"},
    "published": {"marker": "*", "s": 140, "c": "tab:purple"},
}


def _xy(rows: list[EvaluatedRow]) -> tuple[list[float], list[float]]:
    return [r[MEASURED_MS] for r in rows], [100 * r[TEST_ACC] for r in rows]


def _note(ax, r: EvaluatedRow, text: str, offset: tuple[int, int]) -> None:
    ax.annotate(text, (r[MEASURED_MS], 100 * r[TEST_ACC]), textcoords="offset points", xytext=offset,
                fontsize=8)  # fmt: skip


def _budget_points(ax, ok: list[EvaluatedRow]) -> None:
    for r in (r for r in ok if r["kind"] == "budget"):
        colour = "tab:green" if r[MEASURED_MS] <= r["budget_ms"] else "tab:red"
        ax.axvline(r["budget_ms"], ls=":", c=colour, lw=1)
        ax.scatter(*_xy([r]), marker="s", s=55, c=colour, edgecolors="k", zorder=3,
                   label="budget search (green: met, red: missed; dotted: its budget)")  # fmt: skip
        _note(ax, r, f"≤{r['budget_ms']:g} ms", (6, -10))


def _searched_points(ax, ok: list[EvaluatedRow], colorbar) -> None:
    searched = [r for r in ok if r["kind"] == "searched"]
    if not searched:
        return
    sc = ax.scatter(*_xy(searched), c=[r["lam"] for r in searched], cmap="viridis", s=60, edgecolors="k",
                    norm=_lam_norm(searched), label="searched for this target (colour: λ)", zorder=3)  # fmt: skip
    colorbar(sc, ax=ax, label="λ")
    for r in searched:
        _note(ax, r, f"λ={r['lam']:g}", (6, 4))
    front = sorted((r for r in searched if r.get("on_front")), key=lambda r: r[MEASURED_MS])
    ax.step(*_xy(front), where="post", c="tab:red", lw=1.5, label="Pareto front (searched)")


def _panel(ax, rows: list[EvaluatedRow], hardware: str, colorbar) -> None:
    ok = [r for r in rows if r[MEASURED_MS] is not None]
    for kind, style in KIND_STYLE.items():
        points = [r for r in ok if r["kind"] == kind]
        if points:
            ax.scatter(*_xy(points), **style)
    for r in (r for r in ok if r["kind"] == "published"):
        _note(ax, r, r["name"], (5, -10))
    _budget_points(ax, ok)
    _searched_points(ax, ok, colorbar)
    ax.set(xlabel=f"measured latency (ms, ratio x reference)\n{hardware}", ylabel="test accuracy (%)")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))  # one legend entry per label (budget points repeat theirs)
    ax.legend(unique.values(), unique.keys(), loc="best", fontsize=7)


def plot(path: Path, per_target: dict[str, list[EvaluatedRow]], hardware: dict[str, str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(per_target)
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 5), squeeze=False)
    for ax, (spec, rows) in zip(axes[0], per_target.items()):
        _panel(ax, rows, hardware[spec], fig.colorbar)
        ax.set_title(f"target {spec}")
    fig.suptitle("Accuracy vs measured latency, one front per target")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_specialisation(path: Path, spec_rows: list[SpecialisationRow], specs: list[str]) -> None:
    """One panel per deployed target: measured ms of the architecture searched for it
    against those searched for the other targets, at each (lambda, seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    deployed = [b for b in specs if any(r["deployed_on"] == b for r in spec_rows)]
    fig, axes = plt.subplots(1, len(deployed), figsize=(5.5 * len(deployed), 4), squeeze=False)
    for ax, b in zip(axes[0], deployed):
        rows = [r for r in spec_rows if r["deployed_on"] == b]
        cells = sorted({(r["lam"], r["seed"]) for r in rows})
        others = sorted({r["searched_for"] for r in rows})
        width = 0.8 / (1 + len(others))
        for i, (lam, seed) in enumerate(cells):
            own = next(r for r in rows if (r["lam"], r["seed"]) == (lam, seed))["ms_searched_for_deployed"]
            ax.bar(i, own, width, color="tab:green", label="searched for this target" if i == 0 else None)
            for j, a in enumerate(others):
                r = next((r for r in rows if (r["lam"], r["seed"], r["searched_for"]) == (lam, seed, a)), None)
                if r is not None and r["ms_searched_for_other"] is not None:
                    ax.bar(
                        i + (j + 1) * width,
                        r["ms_searched_for_other"],
                        width,
                        color=f"C{j + 3}",
                        label=f"searched for {a}" if i == 0 else None,
                    )
        ax.set_xticks(
            [i + width * len(others) / 2 for i in range(len(cells))], [f"λ={lam:g}, seed {seed}" for lam, seed in cells]
        )
        ax.set(ylabel="measured latency (ms, ratio x reference)", title=f"deployed on {b}")
        ax.legend(fontsize=7)
    fig.suptitle("What searching for the wrong target costs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
