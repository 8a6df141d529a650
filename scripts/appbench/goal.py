"""Goal 8 (docs/results.md) for one workload: its median ratio, how sure
that median is, and the verdict. Used by apps.py and results_apps.py."""
import math
import statistics

# No workload below FLOOR x without zio; where the ceiling (removing every
# user-space copy of the server) is above CEILING_MIN, at least SHARE of
# the gain it implies.
FLOOR, SHARE, CEILING_MIN = 0.97, 0.8, 1.1


def median_ci(v):
    """The median of `v` and the ranks around it that hold the true median
    with about 95% probability (binomial, normal approximation; with a few
    pairs, their extremes), as echo-bench computes it."""
    s = sorted(v)
    n = len(s)
    half = 0.98 * math.sqrt(n)
    lo = min(max(math.floor(n / 2 - half), 1) - 1, n - 1)
    hi = min(max(math.ceil(n / 2 + half), 1), n) - 1
    return statistics.median(s), s[lo], s[hi]


def target(ceiling):
    """The ratio a workload must reach."""
    if ceiling is not None and ceiling > CEILING_MIN:
        return max(FLOOR, 1 + SHARE * (ceiling - 1))
    return FLOOR


def verdict(ratio, hi, ceiling):
    """'met', 'unresolved' (the median misses but its interval reaches the
    target: these pairs cannot tell), 'below 0.97', or the share of the
    ceiling's gain reached when the whole interval falls short of it."""
    want = target(ceiling)
    if ratio >= want:
        return "met"
    if hi is not None and hi >= want:
        return "unresolved"
    if ratio < FLOOR:
        return f"below {FLOOR}"
    return f"{(ratio - 1) / (ceiling - 1):.0%} of ceiling"
