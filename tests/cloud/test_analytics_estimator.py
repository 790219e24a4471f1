"""The cloud's estimator over many simulated installs recovers the true totals within the expected error.

Every simulated report is made by the agent's own perturbation code (agent.minimize.analytics.perturb)
and stored through the cloud's real store (SQLite). The expected error is computed analytically from
the true values: given the N_j reports that sampled counter j out of N, the estimate's variance is
N^2 (1 - N_j/N) S^2 / N_j (which installs sampled j) + (N / N_j) Σ Var(v̂ | v_i) (the randomized bits).
"""

from __future__ import annotations

import math
import random
import statistics

from agent.minimize.analytics import CAPS, COUNTERS, noise_variance, perturb
from cloud.analytics import AnalyticsStore, estimate_rows
from cloud.store import open_db

DAY = "2026-05-04"
INSTALLS = 6_000


def _installs(rng: random.Random) -> list[dict[str, int]]:
    """Skewed true counters: each counter its own mean, some always zero, some past their cap."""
    means = {spec.name: rng.choice([0.0, 0.05, 0.3, 0.8]) * spec.cap for spec in COUNTERS}
    return [
        {name: int(rng.expovariate(1 / mean)) if mean else 0 for name, mean in means.items()}
        for _ in range(INSTALLS)
    ]


def _expected_sd(name: str, values: list[int], sampled: int) -> float:
    capped = [min(v, CAPS[name]) for v in values]
    spread = statistics.variance(capped)
    noise = math.fsum(noise_variance(name, v) for v in capped)
    n, total = sampled, len(values)
    return math.sqrt(total * total * (1 - n / total) * spread / n + total / n * noise)


def test_many_simulated_installs_give_totals_within_four_sigma(tmp_path):
    """6,000 installs, one report each: every counter's estimated total is within 4 sigma of the true one."""
    rng = random.Random(20260504)
    installs = _installs(rng)
    store = AnalyticsStore(open_db(tmp_path / "records.db", ""))
    try:
        reports = [perturb(counters, DAY, rng) for counters in installs]
        for start in range(0, len(reports), 500):
            store.store_batch(reports[start : start + 500])
        estimate = store.estimate(DAY)
    finally:
        store.conn.close()
    assert estimate.reports == INSTALLS
    assert sum(estimate.sampled.values()) == INSTALLS
    for name, cap in CAPS.items():
        values = [i[name] for i in installs]
        true = sum(min(v, cap) for v in values)
        sd = _expected_sd(name, values, estimate.sampled[name])
        assert abs(estimate.totals[name] - true) <= 4 * sd, (name, estimate.totals[name], true, sd)
        assert 0.5 * sd <= estimate.stderr[name] <= 2 * sd, (name, estimate.stderr[name], sd)


def test_the_raw_bits_alone_would_be_far_off():
    """Without inverting the randomized response, counters that are always zero would look busy."""
    rng = random.Random(7)
    zeros = [perturb({}, DAY, rng) for _ in range(4_000)]
    assert sum(r.bit for r in zeros) > 800  # about 1/(e+1) of the bits are 1 for a true zero
    estimate = estimate_rows(DAY, [(r.counter, r.bit) for r in zeros])
    for name, total in estimate.totals.items():
        assert abs(total) <= 4 * estimate.stderr[name], name


def test_a_counter_no_report_sampled_has_no_estimate():
    """Totals exist only for counters some report sampled; the others are missing, not zero."""
    estimate = estimate_rows(DAY, [("scans_run", 1), ("scans_run", 0)])
    assert estimate.reports == 2
    assert set(estimate.totals) == {"scans_run"}
    assert estimate.sampled["objects.text"] == 0
