//! Intervals for proportions: the Wilson score interval of one, and Newcombe's hybrid score
//! interval of the difference of two independent ones. Both stay sound near 0 and 1 and for
//! small samples, where the normal approximation does not.

/// The confidence level of every interval.
pub const LEVEL: f64 = 0.95;
/// The standard normal quantile of 0.975: a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval of `successes` out of `n` (n > 0), as proportions.
pub fn wilson(successes: i64, n: i64) -> (f64, f64) {
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = Z_95 * Z_95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// `p1 − p2` for `successes1` of `n1` against `successes2` of `n2` (both n > 0), with its 95%
/// interval by Newcombe's method 10 (1998): the Wilson limits of each proportion combined.
/// Returns (difference, lower, upper).
pub fn difference(successes1: i64, n1: i64, successes2: i64, n2: i64) -> (f64, f64, f64) {
    let p1 = successes1 as f64 / n1 as f64;
    let p2 = successes2 as f64 / n2 as f64;
    let (l1, u1) = wilson(successes1, n1);
    let (l2, u2) = wilson(successes2, n2);
    let d = p1 - p2;
    let lower = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let upper = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    (d, lower.max(-1.0), upper.min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not {expected} ± {tolerance}"
        );
    }

    #[test]
    fn wilson_matches_the_published_example() {
        // Newcombe (1998), "Two-sided confidence intervals for the single proportion": 81 of 263 gives 0.2553 to 0.3662.
        let (lower, upper) = wilson(81, 263);
        close(lower, 0.2553, 5e-5);
        close(upper, 0.3662, 5e-5);
        // All or nothing still has width.
        let (lower, upper) = wilson(10, 10);
        close(lower, 0.7225, 5e-5);
        close(upper, 1.0, 1e-12);
        let (lower, upper) = wilson(0, 10);
        close(lower, 0.0, 1e-12);
        close(upper, 0.2775, 5e-5);
    }

    #[test]
    fn differences_match_newcombes_examples() {
        // Newcombe (1998), "Interval estimation for the difference between independent
        // proportions", method 10: 56/70 − 48/80 = 0.2, 0.0524 to 0.3339.
        let (d, lower, upper) = difference(56, 70, 48, 80);
        close(d, 0.2, 1e-12);
        close(lower, 0.0524, 5e-5);
        close(upper, 0.3339, 5e-5);
        // 9/10 − 3/10: 0.1705 to 0.8090.
        let (_, lower, upper) = difference(9, 10, 3, 10);
        close(lower, 0.1705, 5e-5);
        close(upper, 0.8090, 5e-5);
    }

    #[test]
    fn a_difference_of_equal_groups_straddles_zero() {
        let (d, lower, upper) = difference(50, 1000, 50, 1000);
        assert_eq!(d, 0.0);
        assert!(lower < 0.0 && upper > 0.0);
        close(lower, -upper, 1e-12);
    }
}
