"""Write a committed simulation study's README from its own tables (no number typed by hand).

    python benchmarks/study_readme.py benchmarks/results/inference_n100
    python benchmarks/study_readme.py benchmarks/results/worlds_n100

Reads ``validation.csv``, ``verdicts.csv`` and ``timing.json`` that
``benchmarks/run_worlds_study.py`` wrote in the folder, and ``NOTES.md`` there (the
hand-written reading of the results: words, no figures) if it exists; writes
``README.md``: the command and its cost, the Monte Carlo error, a table per study kind
(inference extras: every estimand and interval against its own truth; stress-test
worlds: every world's verdict), and the issue targets checked row by row (issue 16: the
primary's |bias| ≤ 0.3 points and coverage 93–97% in every world its assumptions hold;
issue 17: the intent to treat in the reachability world, the design bootstrap's standard
error within 10% of the sampling SD where the design is valid, school-clustered and
district wild bootstrap intervals covering 93–97% in the shared-shocks world).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from pipeline.validation.verdicts import BIAS_TARGET, COVERAGE_TARGET

SE_RATIO_TARGET = 0.10

LABELS = {
    "matched_ancova": "primary, analytic SE clustered by student",
    "matched_ancova_school_clustered": "primary, analytic SE clustered by home school",
    "matched_ancova_district_wild": "primary, wild cluster bootstrap by district (Webb weights below 12)",
    "matched_ancova_design_bootstrap": "primary, design bootstrap (schools within districts)",
    "itt_first_attempt": "intent to treat at the first attempted visit (school-clustered)",
    "reached_families": "families reached (ITT / share reached, Bloom)",
    "matched_ancova_extended": "extended design (whole recorded year)",
    "matched_stacked": "matched differences",
}


def labels_for(timing: dict) -> dict[str, str]:
    """:data:`LABELS`, the primary's row named by the clusters the study gave it."""
    cl = str(timing.get("cluster", "student_key"))
    if cl == "student_key":
        return LABELS
    name = cl.removesuffix("_code").replace("_", " ")
    return {**LABELS, "matched_ancova": f"primary, analytic SE clustered by {name} (the study's own)"}


def _pct(x) -> str:
    return "" if pd.isna(x) else f"{100 * float(x):.0f}%"


def _num(x, fmt: str = "+.2f") -> str:
    return "" if pd.isna(x) else format(float(x), fmt)


def _bias(row, bias: str = "bias", sd: str = "sd_error") -> str:
    """The bias in column ``bias`` with its Monte Carlo SE (``sd`` over √replications)."""
    mcse = float(row[sd]) / math.sqrt(row["n_reps"]) if row["n_reps"] > 1 else math.nan
    return f"{_num(row[bias])} ({_num(mcse, '.2f')})"


def _covers(c: float) -> bool:
    return COVERAGE_TARGET[0] <= c <= COVERAGE_TARGET[1]


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def inference_table(v: pd.DataFrame, labels: dict[str, str] = LABELS) -> list[str]:
    out = [
        "| world | estimand / interval | reps | truth | bias (MC SE) | coverage | SE ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in v.iterrows():
        out.append(
            f"| {r['scenario']} | {labels.get(r['estimator'], r['estimator'])} | {r['n_reps']} "
            f"| {_num(r['truth_mean'], '.2f')} | {_bias(r)} | {_pct(r['coverage'])} "
            f"| {_num(r['se_ratio'], '.2f')} |"
        )
    return out


def inference_targets(
    v: pd.DataFrame, verdicts: pd.DataFrame, labels: dict[str, str] = LABELS
) -> list[str]:
    """Issue 17's targets, one line each, computed from the table."""
    get = v.set_index(["scenario", "estimator"])
    out = []
    if ("reachability", "itt_first_attempt") in get.index:
        r = get.loc[("reachability", "itt_first_attempt")]
        ok = abs(r["bias"]) <= BIAS_TARGET and _covers(r["coverage"])
        out.append(
            f"* Intent to treat in the reachability world: bias {_num(r['bias'])}, coverage "
            f"{_pct(r['coverage'])} (target |bias| <= {BIAS_TARGET}, "
            f"{_pct(COVERAGE_TARGET[0])}-{_pct(COVERAGE_TARGET[1])}): {_mark(ok)}."
        )
        p = get.loc[("reachability", "matched_ancova")]
        out.append(
            f"  The completed-visit design there: bias {_num(p['bias'])}, coverage "
            f"{_pct(p['coverage'])}."
        )
    valid = set(
        verdicts.loc[(verdicts["design"] == "primary") & (verdicts["verdict"] == "valid"), "scenario"]
    )
    for s in v["scenario"].unique():
        if (s, "matched_ancova_design_bootstrap") not in get.index:
            continue
        r = get.loc[(s, "matched_ancova_design_bootstrap")]
        ok = abs(r["se_ratio"] - 1) <= SE_RATIO_TARGET
        tag = "valid world" if s in valid else "primary not judged valid here"
        out.append(
            f"* Design bootstrap SE / sampling SD in `{s}` ({tag}): {_num(r['se_ratio'], '.2f')} "
            f"(target within {SE_RATIO_TARGET:.0%}): {_mark(ok)}; coverage {_pct(r['coverage'])}."
        )
    for est in ("matched_ancova_school_clustered", "matched_ancova_district_wild", "matched_ancova"):
        if ("shared_shocks", est) in get.index:
            r = get.loc[("shared_shocks", est)]
            line = (
                f"* Shared-shocks world, {labels[est]}: coverage {_pct(r['coverage'])} "
                f"(target {_pct(COVERAGE_TARGET[0])}-{_pct(COVERAGE_TARGET[1])}): "
                f"{_mark(_covers(r['coverage']))}"
            )
            cm = r.get("coverage_matched", float("nan"))
            if pd.notna(cm) and r["truth_matched_mean"] != r["truth_mean"]:
                line += (
                    f" (for reference, not the target: of the effect on the visited students "
                    f"the design matched, {_pct(cm)})"
                )
            out.append(line + ".")
    return out


def matched_table(v: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """The completed-visit rows judged against the effect on the visited students the
    design matched as well as on every visited student (empty when the study did not
    record it); the attempt rows are left out, their truth is already the matched one."""
    if "bias_matched" not in v:
        return []
    rows = v[v["bias_matched"].notna() & (v["truth_matched_mean"] != v["truth_mean"])]
    if rows.empty:
        return []
    out = [
        "## Against the effect on the visited students the design matched",
        "",
        "The truth above is the effect on every visited student; the matched design "
        "estimates it on the visited students it could match. The difference between the "
        "two truths is the part of the bias that comes from the students left out; the "
        "bias against the matched students' effect is the design's own. The issues' "
        "targets are judged against every visited student. A row whose matched students' "
        "truth is missing in any replication is left out of this table.",
        "",
        "| world | estimand / interval | truth: every visited student | truth: matched "
        "students | bias (MC SE) | bias against matched students (MC SE) | coverage | "
        "coverage of matched students' effect |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, r in rows.iterrows():
        out.append(
            f"| {r['scenario']} | {labels.get(r['estimator'], r['estimator'])} "
            f"| {_num(r['truth_mean'], '.2f')} | {_num(r['truth_matched_mean'], '.2f')} "
            f"| {_bias(r)} | {_bias(r, 'bias_matched', 'sd_error_matched')} "
            f"| {_pct(r['coverage'])} | {_pct(r['coverage_matched'])} |"
        )
    return out


def worlds_table(verdicts: pd.DataFrame) -> list[str]:
    out = [
        "| world | design | reps | bias (MC SE) | coverage | SE ratio | pre-trend test fires "
        "| placebo date fires | truth bracketed | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in verdicts.iterrows():
        out.append(
            f"| {r['world']} | {r['design']} | {r['n_reps']} | {_num(r['bias'])} "
            f"({_num(r['bias_mcse'], '.2f')}) | {_pct(r['coverage'])} | "
            f"{_num(r['se_ratio'], '.2f')} | {_pct(r['rate_pretrend'])} | "
            f"{_pct(r['rate_placebo'])} | {_pct(r['bracketing'])} | {r['verdict']} |"
        )
    return out


def worlds_targets(verdicts: pd.DataFrame) -> list[str]:
    """Issue 16's target for the primary, strictly (not within Monte Carlo error)."""
    p = verdicts[verdicts["design"] == "primary"]
    out = []
    for _, r in p.iterrows():
        if not bool(r["targets_apply"]):
            continue
        ok = abs(r["bias"]) <= BIAS_TARGET and _covers(r["coverage"])
        out.append(
            f"* `{r['scenario']}`: bias {_num(r['bias'])}, coverage {_pct(r['coverage'])}: "
            f"strict targets {_mark(ok)}; verdict *{r['verdict']}*."
        )
    return out


def render(folder: Path) -> str:
    v = pd.read_csv(folder / "validation.csv")
    verdicts = pd.read_csv(folder / "verdicts.csv")
    timing = json.loads((folder / "timing.json").read_text())
    labels = labels_for(timing)
    inference = bool(timing.get("inference"))
    n = int(v["n_reps"].min())
    cov_mcse = math.sqrt(0.95 * 0.05 / n)
    kind = "Inference study" if inference else "Stress-test study"
    hi = int(v["n_reps"].max())
    lines = [
        f"# {kind}: {n if n == hi else f'{n}-{hi}'} replications per world",
        "",
        "<!-- written by benchmarks/study_readme.py from this folder's tables; do not edit -->",
        "",
        "Made by",
        "",
        f"    {timing['command']}",
        "",
        f"at {timing['n_students']:,} students per replication's state"
        + (
            f" ({timing['n_districts']} districts, {timing['n_program_districts']} of them in "
            "the program)"
            if "n_districts" in timing
            else ""
        )
        + (
            f", {100 * timing['served_share']:.1f}% of a program district's students "
            "reached over the period"
            if timing.get("served_share") is not None
            else ""
        )
        + "; the primary's error "
        f"clustering `{timing.get('cluster', 'student_key')}`, censoring-weight truncation "
        f"`{timing.get('ipcw_truncate')}`, effect strata `{timing.get('effect_strata')}` and "
        f"covariance `{timing.get('vcov', 'CR1')}` as the study ran them (params.yaml, or the "
        "command's flags)"
        + (
            "; the primary's comparison students visited later **imputed**, not weighted "
            "(`estimate.censoring: impute`)"
            if timing.get("primary_censoring", "weights") != "weights"
            else ""
        )
        + (
            "; the primary also conditioning on the recorded year at the first visit "
            "(`estimate.history`: the year-to-date rate, the student's own mean, the rate "
            "four months before)"
            if timing.get("history")
            else ""
        )
        + (
            f"; the design bootstrap's schools given smooth random weights within districts, "
            f"not resampled (scheme `{timing.get('boot_scheme')}`)"
            if inference and timing.get("boot_scheme") not in (None, "multinomial")
            else ""
        )
        + (
            f"; the design bootstrap's draws holding the visited students' "
            f"`{timing.get('boot_hold_mix')}` mix at the full sample's"
            if inference and timing.get("boot_hold_mix")
            else ""
        )
        + (
            f"; the intent to treat's comparison students attempted later handled by "
            f"`{timing.get('itt_censoring') or 'weights'}` (`estimate.estimands.itt_censoring`)"
            if inference
            else ""
        )
        + ". "
        f"Replications summed {timing['replication_seconds_total']:,.0f} s of worker time "
        f"({timing['replication_seconds_total'] / max(1, len(v.drop_duplicates('scenario'))) / n:.1f} s "
        "per replication and world); the last invocation's wall time was "
        f"{timing['seconds']:,.0f} s on 2 cores (a shared machine: worker time is the figure "
        "to compare).",
        "",
        f"Monte Carlo error with {n} replications: the bias's is in brackets; a coverage of 95% "
        f"has a standard error of {100 * cov_mcse:.1f} points.",
        "",
    ]
    if inference:
        lines += ["## Every estimand and interval against its own truth", ""]
        lines += inference_table(v, labels)
        lines += ["", "## Issue 17's targets", ""] + inference_targets(v, verdicts, labels)
    else:
        lines += ["## Verdict per world and design", ""]
        lines += worlds_table(verdicts)
        lines += [
            "",
            "`primary` is the matched ANCOVA of the headline"
            + (
                ", conditioning on the whole recorded school year before the visit, the "
                "student's own mean and a fourth month (`estimate.history`)."
                if timing.get("history")
                else "; `extended` also conditions on the whole recorded school year before "
                "the visit, the student's own mean and a fourth month."
            ),
            "",
            "## Issue 16's target for the primary, strictly",
            "",
        ]
        lines += worlds_targets(verdicts)
    matched = matched_table(v, labels)
    if matched:
        lines += ["", *matched]
    notes = folder / "NOTES.md"
    if notes.exists():
        lines += ["", notes.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    a = ap.parse_args()
    (a.folder / "README.md").write_text(render(a.folder))
    print(f"wrote {a.folder / 'README.md'}")


if __name__ == "__main__":
    main()
