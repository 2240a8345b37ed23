"""Is a drop real? Paired tests on per-example outcomes, z-tests on reported standard errors.

* Paired 0/1 outcomes (same examples, two models): exact McNemar test — under "no
  change", each discordant example is equally likely to be a loss or a gain, so the number
  of losses among the discordant ones is Binomial(b + c, 1/2). The test is one-sided
  (H1: more losses than gains), since a gate asks "did it get worse?". The confidence
  interval of the accuracy delta is the Wald interval for paired proportions.
* Metrics that come with a standard error (lm-eval reports one): one-sided two-sample
  z-test on the difference, with its normal confidence interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

NORMAL = NormalDist()


@dataclass(frozen=True)
class Significance:
    p_value: float
    low: float
    high: float
    test: str

    def describe(self) -> str:
        return f"p={self.p_value:.3g} ({self.test}), 95% CI of delta [{self.low:+.4f}, {self.high:+.4f}]"


def mcnemar(reference: str, current: str, confidence: float = 0.95) -> Significance:
    """Paired outcomes ('0'/'1' strings over the same examples): is ``current`` worse?"""
    if len(reference) != len(current) or not reference:
        raise ValueError("paired outcomes must cover the same, non-empty set of examples")
    lost = sum(r == "1" and c == "0" for r, c in zip(reference, current))
    gained = sum(r == "0" and c == "1" for r, c in zip(reference, current))
    n = len(reference)
    from scipy import (
        stats,  # imported here: a second of start-up that most runs never need
    )

    p = stats.binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue if lost + gained else 1.0
    delta = (gained - lost) / n
    spread = math.sqrt(max(lost + gained - (gained - lost) ** 2 / n, 0.0)) / n
    z = NORMAL.inv_cdf(0.5 + confidence / 2)
    return Significance(float(p), delta - z * spread, delta + z * spread, "exact McNemar")


def z_test(reference: float, reference_se: float, current: float, current_se: float,
           higher_is_better: bool, confidence: float = 0.95) -> Significance:
    """Two independent estimates with standard errors: is ``current`` worse?"""
    spread = math.hypot(reference_se, current_se)
    delta = current - reference
    worse = -delta if higher_is_better else delta
    p = NORMAL.cdf(-worse / spread) if spread > 0 else (0.0 if worse > 0 else 1.0)
    z = NORMAL.inv_cdf(0.5 + confidence / 2)
    return Significance(p, delta - z * spread, delta + z * spread, "z-test")
