"""The label-efficiency experiment's results: the plot and markdown table of `python -m ml.active simulate`, and
`python -m ml.active report`, which merges runs of other strategies on the same experiment (run side by side)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

MAE_ROUNDING = 0.01  # months: two runs' reference MAEs closer than this are the same experiment on another CPU


def labels_to_reach(curve: dict[int, float], target: float) -> float | None:
    """First label count (linear interpolation) at which a mean-MAE curve reaches `target`."""
    points = sorted(curve.items())
    for (n0, m0), (n1, m1) in pairwise(points):
        if m0 <= target:
            return float(n0)
        if m1 <= target:
            return n0 + (n1 - n0) * (m0 - target) / (m0 - m1)
    return float(points[0][0]) if points and points[0][1] <= target else None


@dataclass(frozen=True)
class LearningCurve:
    """MAE = a + b·(n / 100)^(−c), fitted by least squares to every seed's points of one strategy. On a flat, noisy
    curve the first crossing of the mean (`labels_to_reach`) is decided by the noise; the fit is not."""
    a: float
    b: float
    c: float

    @classmethod
    def fit(cls, curve: dict[int, list[float]]) -> LearningCurve | None:
        import warnings

        from scipy.optimize import OptimizeWarning, curve_fit

        if len(curve) < 4:  # three parameters: fewer label counts do not pin them down
            return None
        n = np.array([k for k, values in curve.items() for _ in values], float)
        mae = np.array([v for values in curve.values() for v in values], float)
        law = lambda x, a, b, c: a + b * np.power(x / 100.0, -c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # the covariance is not used
            try:
                (a, b, c), _ = curve_fit(law, n, mae, p0=(mae.min() * 0.9, 1.0, 0.5),
                                         bounds=([0, 0, 0], [np.inf, np.inf, 5]), maxfev=20000)
            except RuntimeError:
                return None
        return cls(float(a), float(b), float(c))

    def mae(self, labels: float) -> float:
        return self.a + self.b * (labels / 100.0) ** (-self.c)

    def labels_to_reach(self, target: float) -> float | None:
        """None where the curve levels off at or above the target."""
        if target <= self.a or self.b <= 0 or self.c <= 0:
            return None
        return 100.0 * (self.b / (target - self.a)) ** (1 / self.c)


def load_run(text: str) -> dict:
    """A simulate JSON back as `simulate` returned it: label counts as int keys again (JSON made them strings)."""
    import json

    out = json.loads(text)
    if out.get("partial"):
        raise ValueError("this run stopped before its end (partial: true); rerun it or report the full ones")
    by_count = lambda curves: {s: {int(n): v for n, v in c.items()} for s, c in curves.items()}
    out["results"] = by_count(out["results"])
    out["by_group"] = {g: by_count(c) for g, c in out.get("by_group", {}).items()}
    out["labelled"] = {s: {int(seed): v for seed, v in runs.items()} for s, runs in out.get("labelled", {}).items()}
    return out


def _by_seed(curves: dict, seeds: dict[str, list[int]]) -> dict:
    """{strategy: {labels: [mae per seed, in that strategy's `seeds` order]}} → {strategy: {seed: {labels: mae}}}."""
    return {s: {seed: {n: values[i] for n, values in c.items() if i < len(values)} for i, seed in enumerate(seeds[s])}
            for s, c in curves.items()}


def _by_count(runs: dict) -> dict:
    """The inverse of _by_seed, seeds in ascending order (per strategy: strategies may have other seeds)."""
    return {s: {n: [runs[s][seed][n] for seed in sorted(runs[s])] for n in next(iter(runs[s].values()))}
            for s in runs}


def _same(a: Any, b: Any) -> bool:
    """Equal, with the starter's reference MAEs allowed to differ by another CPU's float rounding (0.0002 months
    between the two machines the two-site runs used), never by a different experiment's."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=0.0, abs_tol=MAE_ROUNDING)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def merge_runs(runs: list[dict]) -> dict:
    """Runs of the same experiment with other strategies or other seeds (e.g. side by side on two cores) → one
    result to report. A (strategy, seed) in two runs is refused, as are runs of another setup."""
    first = runs[0]
    plain = lambda run: {k: v for k, v in run["setup"].items() if k != "seeds"}
    for other in runs[1:]:
        for key, a, b in [(k, first.get(k), other.get(k)) for k in ("regressor", "reference", "mean_predictor_mae")] + [
                ("setup", plain(first), plain(other))]:
            if not _same(a, b):
                raise ValueError(f"the runs differ in {key}: {a!r} vs {b!r}")
    tables = ["results", *(("by_group", g) for g in first.get("by_group", {}))]
    seeded: dict = {}
    for run in runs:
        seeds = run.get("seeds_by_strategy") or {s: run["setup"]["seeds"] for s in run["results"]}  # merged: its own
        for table in tables:
            curves = run["results"] if table == "results" else run["by_group"][table[1]]
            for strategy, per_seed in _by_seed(curves, seeds).items():
                into = seeded.setdefault(table, {}).setdefault(strategy, {})
                if table == "results" and set(per_seed) & set(into):
                    raise ValueError(f"two runs have {strategy} seed {min(set(per_seed) & set(into))}")
                into.update(per_seed)
    merged = {**first, "seconds": sum(r["seconds"] for r in runs), "results": _by_count(seeded["results"]),
              "by_group": {t[1]: _by_count(seeded[t]) for t in tables[1:]},
              "seeds_by_strategy": {s: sorted(c) for s, c in seeded["results"].items()}}
    merged["setup"] = {**first["setup"], "seeds": sorted({seed for r in runs for seed in r["setup"]["seeds"]})}
    merged["labelled"] = {}
    for run in runs:
        for strategy, per_seed in run.get("labelled", {}).items():
            merged["labelled"].setdefault(strategy, {}).update(per_seed)
    merged["strategy_seconds"] = {}
    for run in runs:
        for strategy, sec in run.get("strategy_seconds", {}).items():
            merged["strategy_seconds"][strategy] = merged["strategy_seconds"].get(strategy, 0.0) + sec
    return merged


def _on_seeds(curve: dict[int, list[float]], have: list[int], keep: list[int]) -> dict[int, list[float]]:
    return {n: [v for seed, v in zip(have, values) if seed in keep] for n, values in curve.items()}


def _fewer(need: float | None, stop: int) -> str:
    if need is None:
        return "not reached"
    saving = 100 * (1 - need / stop)
    return f"{need:.0f} labels, {saving:.0f}% fewer" if saving >= 0 else f"{need:.0f} labels, {-saving:.0f}% more"


def label_savings(res: dict, seeds: dict) -> tuple[list[str], str]:
    """Markdown: the labels each strategy needs to reach random's MAE at the last count, against random on the
    strategy's own seeds (the same start sets) — by the first crossing of the mean curve and by the fitted curves."""
    stop = max(res["random"])
    lines, summary = [], ""
    for s, curve in res.items():
        if s == "random":
            continue
        common = [seed for seed in seeds[s] if seed in seeds["random"]]
        random, own = _on_seeds(res["random"], seeds["random"], common), _on_seeds(curve, seeds[s], common)
        target = float(np.mean(random[stop]))
        need = labels_to_reach({n: float(np.mean(v)) for n, v in own.items()}, target)
        random_fit, fit = LearningCurve.fit(random), LearningCurve.fit(own)
        if random_fit is None:
            fitted = "no fit"
        else:
            reached = _fewer(fit.labels_to_reach(random_fit.mae(stop)), stop) if fit else "—"
            fitted = f"random's fit reads {random_fit.mae(stop):.2f} at {stop}; {s}'s fit reaches it at {reached}"
        lines.append(f"- {s} (seeds {', '.join(map(str, common))}): random's mean reads {target:.2f} at {stop} labels; "
                     f"{s}'s mean reaches it at {_fewer(need, stop)}. Fitted curves: {fitted}.")
        summary += f"{s}: {'not reached' if need is None else f'{need:.0f} labels'}; "
    random_mean = {n: float(np.mean(v)) for n, v in res["random"].items()}
    itself = labels_to_reach(random_mean, random_mean[stop])
    lines.append(f"- random itself (seeds {', '.join(map(str, seeds['random']))}): its mean first reaches its own "
                 f"{stop}-label MAE ({random_mean[stop]:.2f}) at {_fewer(itself, stop)} — the first crossing's noise floor on "
                 "this curve; a fit reaches its own value at the last count by construction.")
    head = (f"Labels to reach random's MAE at {stop} (first crossing of the mean curve, linear interpolation; fitted: "
            "MAE = a + b·(n/100)^(−c) over every seed's points):")
    return ["", head, "", *lines], summary


def paired_at_stop(res: dict, seeds: dict) -> list[str]:
    """Markdown: each strategy minus random on the same seed (the same start set) at the last label count."""
    if "random" not in res:
        return []
    stop = max(res["random"])
    random = dict(zip(seeds["random"], res["random"][stop]))
    lines = ["", f"Per seed at {stop} labels, strategy − random on the same start set (months):", ""]
    for st, curve in res.items():
        if st == "random" or stop not in curve:
            continue
        diffs = [v - random[seed] for seed, v in zip(seeds[st], curve[stop]) if seed in random]
        lines.append(f"- {st}: " + ", ".join(f"{d:+.2f}" for d in diffs) + f" (mean {np.mean(diffs):+.2f})")
    return lines


def group_tables(out: dict) -> list[str]:
    """Markdown: the test MAE within each test group, and the share of each strategy's labels from the new site."""
    lines: list[str] = []
    for group, curves in out.get("by_group", {}).items():
        lines += ["", f"Test MAE on the {group}'s studies, mean ± sd over seeds:", "",
                  "| labels | " + " | ".join(curves) + " |", "|---:|" + "---:|" * len(curves)]
        for n in sorted(next(iter(curves.values()))):
            lines.append(f"| {n} | " + " | ".join(f"{np.mean(c[n]):.2f} ± {np.std(c[n]):.2f}" for c in curves.values())
                         + " |")
    if out.get("regressor") == "sites" and out.get("labelled"):
        from ml.active_sites import from_new_site

        share = out["setup"]["new_site_share"]
        pool_share = out["setup"]["new_site_in_pool"] / out["setup"]["pool"]
        lines += ["", f"Share of the labelled studies from the new site at the end (the pool holds {pool_share:.0%}):",
                  ""]
        for s, runs in out["labelled"].items():
            shares = [np.mean([from_new_site(2027, i, share) for i in picked]) for picked in runs.values()]
            lines.append(f"- {s}: {np.mean(shares):.0%} ({', '.join(f'{x:.0%}' for x in shares)} per seed)")
    return lines


def report(out: dict, png: str, md: str, command: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = out["results"]
    means = {s: {n: float(np.mean(v)) for n, v in sorted(c.items())} for s, c in res.items()}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s, c in res.items():
        ns = sorted(c)
        m = np.array([np.mean(c[n]) for n in ns])
        sd = np.array([np.std(c[n]) for n in ns])
        ax.plot(ns, m, marker="o", ms=3, label=s)
        ax.fill_between(ns, m - sd, m + sd, alpha=0.15)
    reference = out.get("reference")
    if reference:  # the curves sit within a month of it, far below the mean predictor: zoom on them
        ax.axhline(reference["mae"], color="black", ls="--", label=f"{reference['label']} ({reference['mae']:.2f})")
    else:
        ax.axhline(out["mean_predictor_mae"], color="grey", ls=":", label="predict the mean")
    ax.set_xlabel("labelled studies")
    ax.set_ylabel("test MAE (months)")
    ax.set_title(f"Label efficiency on phantoms ({out.get('regressor', 'gp')} regressor; mean ± sd over seeds)\n"
                 f"predicting the mean: {out['mean_predictor_mae']:.1f} months", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    lines = [f"Command: `{command}` ({out['seconds']:.0f} s on the shared 2-core CPU).", "",
             "| labels | " + " | ".join(means) + " |", "|---:|" + "---:|" * len(means)]
    for n in sorted(next(iter(means.values()))):
        lines.append(f"| {n} | " + " | ".join(f"{means[s][n]:.2f} ± {np.std(res[s][n]):.2f}" for s in means) + " |")
    if out.get("strategy_seconds"):
        lines += ["", "Wall time per strategy (all seeds): " + ", ".join(
            f"{s} {sec:.0f} s" for s, sec in out["strategy_seconds"].items()) + "."]
    seeds = out.get("seeds_by_strategy") or {st: out["setup"]["seeds"] for st in res}
    if len({tuple(v) for v in seeds.values()}) > 1:
        lines += ["", "Seeds: " + ", ".join(f"{st} {', '.join(map(str, v))}" for st, v in seeds.items()) + "."]
    lines += paired_at_stop(res, seeds)
    summary = ""
    if reference:
        lines += ["", f"{reference['label'].capitalize()}, before any label: {reference['mae']:.2f} months."]
        if "mae_new_site" in reference:
            lines[-1] += (f" New site {reference['mae_new_site']:.2f}, first site {reference['mae_first_site']:.2f}.")
    lines += group_tables(out)
    if "random" in res:
        savings, summary = label_savings(res, seeds)
        lines += savings
    Path_md = __import__("pathlib").Path(md)
    Path_md.write_text(Path_md.read_text().split("<!-- results -->")[0] + "<!-- results -->\n\n" + "\n".join(lines) + "\n"
                       if Path_md.exists() and "<!-- results -->" in Path_md.read_text() else "\n".join(lines) + "\n")
    return summary
