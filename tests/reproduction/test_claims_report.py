"""report.evaluate and render with the verdicts of issue 15: every claim present, "not run"
without its campaign, the counts of each verdict under the table. No training."""

from __future__ import annotations

from reproduction import report
from reproduction.claims import NOT_RESOLVED, NOT_RUN, Claim

KEYS = [
    "crossover",
    "jamming",
    "n_star",
    "hypostatic",
    "double_descent",
    "fluctuations",
    "regimes",
    "stripe",
    "crossover_bend",
    "alignment",
    "compressed",
    "kpca",
    "cnn",
]


def test_every_claim_is_not_run_without_its_campaign():
    results = report.evaluate({})
    assert [c.key for c in results] == KEYS
    assert all(c.verdict == NOT_RUN for c in results)
    assert "features_cnn" in results[-1].measured  # the campaign it reads, by its stem


def test_render_counts_the_verdicts_and_shows_not_resolved():
    results = report.evaluate({})
    results[3] = Claim("hypostatic", "t", "p", "m", NOT_RESOLVED, "r")
    text = report.render(results, {}, [], {"runs": []}, "notes")
    assert "| 4 | t | **not resolved** |" in text
    assert "Of 13 claims: 1 not resolved, 12 not run." in text
    assert "**Verdict: not resolved.** Rule: r" in text
