"""The report as one self-contained HTML file: inline CSS, figures embedded as base64 PNG, no scripts.

The page opens offline from anywhere (a mail attachment, an MLflow artifact view): it loads no
file, font, stylesheet or script. The SVG version of every figure sits beside it in ``figures/``.
Sections: header (study, dataset, protocol, budget, seeds, trial counts and what was left out),
claims, DeVAE against its paper (DeVAE tolerance studies only), tolerance, response curves,
reconstruction against disentanglement, importances, rank correlations, variance decomposition,
and the trials left out with their reasons.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from disent_core.data.provenance import label_is_comparable
from disent_core.methods.base import REIMPLEMENTATION
from disent_core.metrics.protocol import get_protocol
from studies.report.figures import SavedFigure, param_label, short
from studies.report.findings import study_findings
from studies.report.paper import PAPER_BUDGET, RECON_ESTIMATORS, Comparison, Row
from studies.report.results import COMPLETED, FAILED, RUNNING, STOPPED
from studies.results import DATASET_PROVENANCE, METHOD_PROVENANCE, TRAIN_CONFIG

if TYPE_CHECKING:
    from studies.report.build import Report

MAX_LEFT_OUT_ROWS = 100
SECTIONS = (
    ("claims", "Claims"),
    ("devae", "DeVAE against its paper"),
    ("tolerance", "Tolerance"),
    ("curves", "Scores against hyperparameters"),
    ("pareto", "Reconstruction against disentanglement"),
    ("importances", "Hyperparameter importances"),
    ("spearman", "Rank correlation between metrics"),
    ("variance", "Where the variance comes from"),
    ("left-out", "Trials left out"),
)

CSS = """
:root { --fg: #1d2330; --muted: #5d6678; --line: #d9dee7; --bg: #ffffff; --panel: #f5f7fa;
        --good: #1b7f3b; --good-bg: #e3f4e8; --bad: #b42318; --bad-bg: #fde8e6; --na: #7a5b00;
        --na-bg: #fff4d6; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 40px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 6px; }
p.lead { color: var(--muted); margin: 0 0 16px; }
.findings { margin: 0 0 16px; }
.findings ul { margin: 4px 0 0; padding-left: 20px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 12px 0;
         padding: 12px 16px; background: var(--panel); border-radius: 8px; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.counts span { display: inline-block; margin-right: 10px; padding: 1px 8px; border-radius: 10px;
               background: #e8ecf2; }
.counts span.completed { background: var(--good-bg); color: var(--good); }
.counts span.failed { background: var(--bad-bg); color: var(--bad); }
.counts span.running, .counts span.stopped { background: var(--na-bg); color: var(--na); }
.banner { padding: 10px 14px; border-radius: 8px; background: var(--na-bg); color: var(--na);
          margin: 12px 0; }
nav { margin: 16px 0; font-size: 14px; }
nav a { margin-right: 14px; color: #2457a6; text-decoration: none; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: 600; padding: 1px 8px; border-radius: 10px; white-space: nowrap; }
.verdict.supported { background: var(--good-bg); color: var(--good); }
.verdict.not-supported { background: var(--bad-bg); color: var(--bad); }
.verdict.not-enough-trials { background: var(--na-bg); color: var(--na); }
figure { margin: 12px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.note { color: var(--muted); font-size: 13.5px; margin: 4px 0; }
.detail { color: var(--muted); font-size: 12.5px; }
code { font-size: 13px; background: var(--panel); padding: 0 4px; border-radius: 4px; }
footer { margin-top: 48px; color: var(--muted); font-size: 12.5px; }
"""


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return escape(str(value))


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """A table from already-escaped cells; columns in ``numeric`` are right-aligned."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(saved: SavedFigure) -> str:
    data = base64.b64encode(saved.png.read_bytes()).decode("ascii")
    return (f'<figure id="fig-{escape(saved.name)}"><img src="data:image/png;base64,{data}" '
            f'alt="{escape(saved.title)}"><figcaption>{escape(saved.caption)} '
            f"<code>figures/{escape(saved.name)}.svg</code></figcaption></figure>")


def _notes(report: Report, section: str) -> str:
    return "".join(f'<p class="note">{escape(n)}</p>' for n in report.notes.get(section, []))


def _config(config: dict[str, Any], method: str) -> str:
    return escape(", ".join(f"{param_label(k, method)}={_num(v, 4)}" for k, v in config.items()) or "(fixed)")


def _provenance(trials: Any) -> str:
    """The data provenance the trials recorded: ``procedural`` or the real files' SHA-256."""
    recorded = trials.get(DATASET_PROVENANCE)
    labels = sorted(set(recorded.dropna())) if recorded is not None else []
    if not labels:
        return "<span class='detail'>not recorded by any trial</span>"
    out = "<br>".join(escape(label) for label in labels)
    if not all(label_is_comparable(label) for label in labels):
        out += " <span class='detail'>(procedural data: not comparable with published numbers)</span>"
    return out


GAMMA_MODE = f"{TRAIN_CONFIG}method.gamma_mode"
PRECISION = f"{TRAIN_CONFIG}train.precision"


def precision_label(trials: Any, planned: str) -> str:
    """The training arithmetic the trials recorded (``train.precision``), else the spec's, as HTML.

    Args:
        trials: the results table (``train_config.train.precision`` where recorded).
        planned: the spec's ``train.precision``, shown when no trial recorded one.

    Returns:
        The precisions, comma-separated; each reduced one says that its numbers differ from fp32's.
    """
    recorded = trials[PRECISION].dropna().astype(str) if PRECISION in trials.columns else []
    labels = sorted(set(recorded)) or [planned]
    return ", ".join(
        escape(label) + ("" if label == "fp32" else
                         " <span class='detail'>(autocast: numbers differ from the fp32 reference)</span>")
        for label in labels
    )


def method_label(trials: Any, method: str) -> str:
    """``method`` with what its trials recorded about how it was run: its provenance when it is not
    a re-implementation of published code (DiD: a reconstruction) and DEFT's ``gamma_mode``.

    Args:
        trials: the results table (``method``, and ``method_provenance`` and
            ``train_config.method.gamma_mode`` where recorded).
        method: the method.

    Returns:
        ``method``, or ``method (provenance: ...; gamma_mode: ...)`` with the values its trials recorded.
    """
    rows = trials[trials["method"] == method] if "method" in trials.columns else trials.iloc[0:0]
    notes = []
    for column, name in ((METHOD_PROVENANCE, "provenance"), (GAMMA_MODE, "gamma_mode")):
        if column in rows.columns:
            values = sorted(set(rows[column].dropna().astype(str)) - {REIMPLEMENTATION})
            notes += [f"{name}: {v}" for v in values]
    return f"{method} ({'; '.join(notes)})" if notes else method


def _header(report: Report) -> str:
    results = report.results
    spec = results.spec
    counts = results.counts
    protocol = get_protocol(spec.evaluation.protocol)
    batch = int(spec.train.get("batch_size", 64))
    images = spec.steps * batch
    amount = f"{images / 1e6:.3g}M" if images >= 1e6 else f"{images:,}"
    budget = f"{spec.steps:,} steps × batch {batch} = {amount} images per trial"
    excluded = counts[FAILED] + counts[RUNNING] + counts[STOPPED]
    chips = "".join(f'<span class="{k}">{counts[k]} {k}</span>' for k in (COMPLETED, FAILED, RUNNING, STOPPED)
                    if counts[k] or k == COMPLETED)
    facts = [
        ("dataset", escape(spec.dataset.name + (f" {spec.dataset.options}" if spec.dataset.options else ""))),
        ("data provenance", _provenance(results.trials)),
        ("protocol", f"{escape(protocol.name)} <span class='detail'>hash {escape(protocol.hash)}</span>, "
                     f"{escape(spec.evaluation.representation)} representation"),
        ("training budget", escape(budget)),
        ("training precision", precision_label(results.trials, spec.train.get("precision", "fp32"))),
        ("seeds", escape(", ".join(map(str, spec.seeds)))),
        ("methods", escape(", ".join(method_label(results.trials, m) for m in spec.methods))),
        ("search", escape(f"{spec.search.algorithm}, objective "
                          + ", ".join(f"{o.mode} {o.metric}" for o in spec.objectives))),
        ("trials", f'<span class="counts">{chips}</span> of {results.planned} planned'),
        ("source", escape(f"{results.source}; MLflow {results.tracking_uri}, "
                          f"parent run {results.parent_run_id}")),
    ]
    out = [f"<h1>Study report: {escape(spec.name)}</h1>"]
    if spec.description:
        out.append(f'<p class="lead">{escape(spec.description.strip())}</p>')
    out.append('<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>")
    if counts[COMPLETED]:
        found = "".join(f"<li>{escape(line)}</li>" for line in study_findings(results))
        out.append(f'<div class="findings"><b>Findings</b><ul>{found}</ul></div>')
    if excluded or counts[COMPLETED] < results.planned:
        left = ", ".join(f"{counts[k]} {k}" for k in (FAILED, RUNNING, STOPPED) if counts[k]) or "none"
        out.append(f'<div class="banner">Partial study: {counts[COMPLETED]} of {results.planned} planned '
                   f"trials completed. Left out of every analysis: {escape(left)}.</div>")
    out.append(_notes(report, "header"))
    links = "".join(f'<a href="#{key}">{title}</a>' for key, title in SECTIONS
                    if key != "devae" or report.devae is not None)
    out.append(f"<nav>{links}</nav>")
    return "".join(out)


def _claims(report: Report) -> str:
    if not report.claims:
        return ('<p class="note">The spec lists no claims. Add them under <code>report.claims</code>, e.g. '
                "<code>devae tolerance(mig) &gt; beta_vae tolerance(mig)</code>.</p>")
    confidence = f"{100 * report.results.spec.report.confidence:g}%"
    rows = []
    for c in report.claims:
        verdict = f'<span class="verdict {c.verdict.replace(" ", "-")}">{escape(c.verdict)}</span>'
        rows.append([escape(c.text), _num(c.lhs), _num(c.rhs), _num(c.difference),
                     f"[{_num(c.ci_low)}, {_num(c.ci_high)}]", verdict,
                     f'<span class="detail">{escape(c.detail)}</span>'])
    return _table(["claim", "left", "right", "difference", f"{confidence} CI", "verdict", "detail"], rows,
                  numeric=(1, 2, 3, 4))


def _devae_rows(rows: list[Row]) -> list[list[str]]:
    return [[escape(r.setting), escape(r.paper_mig), escape(str(r.ours_mig)), escape(r.paper_recon),
             escape(str(r.ours_recon)), escape(str(r.ours_train_recon))] for r in rows]


def _devae(comparison: Comparison) -> str:
    header = ["{}", "MIG (paper)", "MIG (ours)", "reconstruction (paper)", "reconstruction (ours)",
              "training loss (ours)"]
    return "".join([
        f'<p class="note"><b>{escape(comparison.budget)}</b><br>{escape(PAPER_BUDGET)}. Paper rows: '
        f"{escape(comparison.dataset)}. Reconstruction: per-image sum (BCE nats for Bernoulli, squared error "
        f"for L2). {escape(RECON_ESTIMATORS)} Our numbers match the paper's setting only at its budget, data "
        "and protocol.</p>",
        "<h3>Table 3: the list of betas, s = 1</h3>",
        _table([h.format("betas") for h in header], _devae_rows(comparison.table3)),
        "<h3>Table 4: s, betas [1, 10, 40]</h3>",
        _table([h.format("s") for h in header], _devae_rows(comparison.table4)),
        f'<p class="note">{comparison.omitted} more settings of ours are not shown (the paper\'s settings '
        "only); every trial is in results.parquet.</p>" if comparison.omitted else "",
    ])


def _tolerance(report: Report) -> str:
    settings = report.results.spec.report
    rows = []
    for t in report.tolerances:
        measured = bool(t.params) and t.n_configs > 1
        index = (_num(t.index) if measured
                 else "not measurable <span class='detail'>(one configuration)</span>")
        interval = f"[{_num(t.ci_low)}, {_num(t.ci_high)}]" if measured else "–"
        rows.append([escape(t.method), escape(short(t.metric)), escape(t.mode), index,
                     interval, _num(t.best_median, 4),
                     _config(t.best_config, t.method), _num(t.seed_std_at_best), str(t.n_configs),
                     str(t.min_seeds)])
    intro = (f'<p class="note">A setting is tolerated when its median over seeds is within '
             f"{settings.tolerance_threshold:g} × |best| of the best setting's median. The index is the "
             "share of the searched range (one numeric parameter) or of the configurations (several, or "
             f"choices) that is tolerated; the interval is a {100 * settings.confidence:g}% bootstrap over "
             "seeds.</p>")
    table = _table(["method", "metric", "better", "index", "CI", "best median", "best setting",
                    "seed std at best", "configs", "min seeds"], rows, numeric=(3, 4, 5, 7, 8, 9))
    return intro + "".join(_figure(f) for f in report.section_figures("tolerance")) + (table if rows else "")


def _variance(report: Report) -> str:
    rows = [[escape(short(m)), *(f"{v[k]:.3f}" for k in ("method", "hyperparameters", "seed")),
             _num(v["total_variance"])] for m, v in report.variance.items()]
    table = _table(["metric", "method", "hyperparameters", "seed", "total variance"], rows,
                   numeric=(1, 2, 3, 4))
    return "".join(_figure(f) for f in report.section_figures("variance")) + (table if rows else "")


def _importances(report: Report) -> str:
    rows = [[escape(short(metric)), escape(method), escape(param_label(param, method)), f"{value:.3f}"]
            for metric, by_method in report.importances.items()
            for method, values in by_method.items() for param, value in values.items()]
    table = _table(["objective", "method", "parameter", "importance"], rows, numeric=(3,))
    return "".join(_figure(f) for f in report.section_figures("importances")) + (table if rows else "")


def _left_out(report: Report) -> str:
    trials = report.results.trials
    if trials.empty:
        return '<p class="note">No trial has been tracked yet.</p>'
    left = trials[trials["status"] != COMPLETED]
    if left.empty:
        return '<p class="note">None: every tracked trial completed.</p>'
    rows = [[escape(str(r.get("trial_id", ""))), escape(str(r.get("method", ""))), _num(r.get("seed")),
             escape(str(r.get("status", ""))), _num(r.get("step")), escape(str(r.get("error") or ""))]
            for r in left.head(MAX_LEFT_OUT_ROWS).to_dict("records")]
    more = (f'<p class="note">… and {len(left) - MAX_LEFT_OUT_ROWS} more, listed in results.parquet.</p>'
            if len(left) > MAX_LEFT_OUT_ROWS else "")
    return _table(["trial", "method", "seed", "status", "last step", "reason"], rows, numeric=(2, 4)) + more


def _section(report: Report, key: str) -> str:
    if key == "claims":
        return _claims(report)
    if key == "devae":
        return _devae(report.devae) if report.devae is not None else ""
    if key == "tolerance":
        return _tolerance(report)
    if key == "variance":
        return _variance(report)
    if key == "importances":
        return _importances(report)
    if key == "left-out":
        return _left_out(report)
    return "".join(_figure(f) for f in report.section_figures(key))


def render(report: Report) -> str:
    """The whole page.

    Args:
        report: the computed report.

    Returns:
        The self-contained HTML document.
    """
    body = [_header(report)]
    for key, title in SECTIONS:
        if key == "devae" and report.devae is None:
            continue
        content = _section(report, key) + _notes(report, key)
        body.append(f'<section id="{key}"><h2>{title}</h2>{content}</section>')
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body.append(f"<footer>Generated by <code>disent-study report</code> on {generated} in "
                f"{report.seconds:.1f} s. Figures as SVG in <code>figures/</code>; one row per trial in "
                "<code>results.parquet</code>.</footer>")
    title = escape(f"Study report: {report.results.spec.name}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
            f"<style>{CSS}</style></head><body><main>{''.join(body)}</main></body></html>\n")
