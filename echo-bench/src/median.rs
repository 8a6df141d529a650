//! Medians of measurements, and how sure a median is.

/// The median of the finite values of `v` (NaN if there are none).
pub fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().cloned().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The median of `v` and the ranks around it that hold the true median
/// with about 95% probability (binomial, normal approximation): no
/// assumption about how the rounds are distributed.
pub fn median_ci(v: &[f64]) -> (f64, f64, f64) {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len() as f64;
    let half = 0.98 * n.sqrt();
    let lo = ((n / 2.0 - half).floor().max(1.0) as usize - 1).min(s.len() - 1);
    let hi = ((n / 2.0 + half).ceil() as usize).clamp(1, s.len()) - 1;
    (median(&s), s[lo], s[hi])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_finite_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[f64::NAN, 1.0]), 1.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn median_interval_brackets_the_median() {
        let v: Vec<f64> = (1..=30).map(f64::from).collect();
        let (m, lo, hi) = median_ci(&v);
        assert_eq!(m, 15.5);
        // n = 30: ranks 15 -/+ 5.4 -> the 9th and 21st values.
        assert_eq!((lo, hi), (9.0, 21.0));
        let (m, lo, hi) = median_ci(&[2.0]);
        assert_eq!((m, lo, hi), (2.0, 2.0, 2.0));
        assert!(median_ci(&[]).0.is_nan());
    }
}
