//! The statistics behind the metrics: NPS with the interval of a difference of two
//! proportions of one multinomial sample, CSAT with a Wilson score interval, the CES mean with a
//! Student's t interval, and the difference of two independent groups for driver analysis.
//!
//! Everything works on counts per score, which is all SQL hands back: no answer rows reach Rust.

pub(crate) use throughline_runtime::proportion::{LEVEL, Z_95, wilson};

/// The CES scale: 1 (no effort) to 7.
const CES_MIN: f64 = 1.0;
const CES_MAX: f64 = 7.0;
/// The largest variance an answer on the CES scale can have, for groups too small to estimate
/// their own: half the range, squared.
const CES_MAX_VARIANCE: f64 = (CES_MAX - CES_MIN) * (CES_MAX - CES_MIN) / 4.0;

/// How many answers gave each score of one kind: index `i` holds score `offset + i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts<const N: usize> {
    pub by_score: [i64; N],
}

impl<const N: usize> Default for Counts<N> {
    fn default() -> Self {
        Self { by_score: [0; N] }
    }
}

impl<const N: usize> Counts<N> {
    pub(crate) fn total(&self) -> i64 {
        self.by_score.iter().sum()
    }

    pub(crate) fn add(&mut self, other: &Self) {
        for (mine, theirs) in self.by_score.iter_mut().zip(other.by_score) {
            *mine += theirs;
        }
    }

    pub(crate) fn minus(&self, other: &Self) -> Self {
        let mut rest = *self;
        for (mine, theirs) in rest.by_score.iter_mut().zip(other.by_score) {
            *mine -= theirs;
        }
        rest
    }

    fn sum(&self, scores: std::ops::RangeInclusive<usize>) -> i64 {
        self.by_score[scores].iter().sum()
    }
}

/// NPS answers, 0 to 10.
pub(crate) type NpsCounts = Counts<11>;
/// CSAT answers, 1 to 5 (index 0 is score 1).
pub(crate) type CsatCounts = Counts<5>;
/// CES answers, 1 to 7 (index 0 is score 1).
pub(crate) type CesCounts = Counts<7>;

/// An estimate with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Estimate {
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
    /// The variance of `value`, in its own units squared: what a comparison of two independent
    /// groups adds up.
    pub variance: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Nps {
    pub estimate: Estimate,
    pub promoters: i64,
    pub passives: i64,
    pub detractors: i64,
    pub count: i64,
}

/// NPS = 100·(P − D); Var(P̂ − D̂) = (P + D − (P − D)²)/n for one multinomial sample. `None`
/// without answers.
pub(crate) fn nps(counts: &NpsCounts) -> Option<Nps> {
    let count = counts.total();
    if count <= 0 {
        return None;
    }
    let promoters = counts.sum(9..=10);
    let detractors = counts.sum(0..=6);
    let n = count as f64;
    let (p, d) = (promoters as f64 / n, detractors as f64 / n);
    let value = 100.0 * (p - d);
    let variance = 100.0 * 100.0 * ((p + d - (p - d).powi(2)) / n).max(0.0);
    let half = Z_95 * variance.sqrt();
    Some(Nps {
        estimate: Estimate {
            value,
            lower: (value - half).max(-100.0),
            upper: (value + half).min(100.0),
            variance,
        },
        promoters,
        passives: count - promoters - detractors,
        detractors,
        count,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Csat {
    pub estimate: Estimate,
    pub satisfied: i64,
    pub count: i64,
}

/// CSAT = % of answers 4 or 5, with the Wilson score interval (sound near 0 % and 100 % and
/// for small samples, where the normal approximation is not). `None` without answers.
pub(crate) fn csat(counts: &CsatCounts) -> Option<Csat> {
    let count = counts.total();
    if count <= 0 {
        return None;
    }
    let satisfied = counts.sum(3..=4);
    let (lower, upper) = wilson(satisfied, count);
    let n = count as f64;
    let p = satisfied as f64 / n;
    Some(Csat {
        estimate: Estimate {
            value: 100.0 * p,
            lower: 100.0 * lower,
            upper: 100.0 * upper,
            variance: 100.0 * 100.0 * p * (1.0 - p) / n,
        },
        satisfied,
        count,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ces {
    pub estimate: Estimate,
    pub count: i64,
}

/// The CES mean with a Student's t interval (df = n − 1), clamped to the scale. One answer says
/// nothing about the spread: its interval is the whole scale. `None` without answers.
pub(crate) fn ces(counts: &CesCounts) -> Option<Ces> {
    let count = counts.total();
    if count <= 0 {
        return None;
    }
    let n = count as f64;
    let score = |index: usize| CES_MIN + index as f64;
    let mean = counts
        .by_score
        .iter()
        .enumerate()
        .map(|(i, c)| score(i) * *c as f64)
        .sum::<f64>()
        / n;
    let (lower, upper, variance) = if count < 2 {
        (CES_MIN, CES_MAX, CES_MAX_VARIANCE)
    } else {
        let squares: f64 = counts
            .by_score
            .iter()
            .enumerate()
            .map(|(i, c)| *c as f64 * (score(i) - mean).powi(2))
            .sum();
        let sample_variance = squares / (n - 1.0);
        let half = t_quantile(0.975, n - 1.0) * (sample_variance / n).sqrt();
        (
            (mean - half).max(CES_MIN),
            (mean + half).min(CES_MAX),
            sample_variance / n,
        )
    };
    Some(Ces {
        estimate: Estimate {
            value: mean,
            lower,
            upper,
            variance,
        },
        count,
    })
}

/// `group − rest` with its 95% interval for two independent samples: the variances add. Means
/// (`student` with both sample sizes) use Welch's degrees of freedom; proportions the normal
/// quantile.
pub(crate) fn difference(
    group: &Estimate,
    rest: &Estimate,
    student: Option<(i64, i64)>,
) -> Estimate {
    let value = group.value - rest.value;
    let variance = group.variance + rest.variance;
    let quantile = match student {
        Some((n_group, n_rest)) if n_group > 1 && n_rest > 1 && variance > 0.0 => {
            let df = variance.powi(2)
                / (group.variance.powi(2) / (n_group - 1) as f64
                    + rest.variance.powi(2) / (n_rest - 1) as f64);
            t_quantile(0.975, df)
        }
        _ => Z_95,
    };
    let half = quantile * variance.sqrt();
    Estimate {
        value,
        lower: value - half,
        upper: value + half,
        variance,
    }
}

/// The `p` quantile (0 < p < 1) of Student's t distribution with `df` > 0 degrees of freedom,
/// found by bisection on the distribution function, which is computed from the regularised
/// incomplete beta function. Exact to about 1e-10.
pub(crate) fn t_quantile(p: f64, df: f64) -> f64 {
    if p == 0.5 {
        return 0.0;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let mut high = 1.0;
    while t_cdf(high, df) < p && high < 1e12 {
        high *= 2.0;
    }
    let mut low = 0.0;
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if t_cdf(middle, df) < p {
            low = middle;
        } else {
            high = middle;
        }
        if high - low <= 1e-12 * high.max(1.0) {
            break;
        }
    }
    0.5 * (low + high)
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom.
pub(crate) fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * incomplete_beta(df / (df + t * t), df / 2.0, 0.5);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The regularised incomplete beta function I_x(a, b), by its continued fraction (modified
/// Lentz), using the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) where that converges faster.
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_fraction(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * beta_fraction(1.0 - x, b, a) / b
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut fraction = d;
    for m in 1..1000 {
        let m = f64::from(m);
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + numerator / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            fraction *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    fraction
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine coefficients; relative error below 1e-14).
fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, coefficient) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += coefficient / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    #[test]
    fn t_quantiles_match_the_tables() {
        // Two-sided 95% critical values, as printed in statistical tables (3 decimals).
        for (df, expected) in [
            (1.0, 12.706),
            (2.0, 4.303),
            (3.0, 3.182),
            (5.0, 2.571),
            (10.0, 2.228),
            (30.0, 2.042),
            (120.0, 1.980),
        ] {
            close(t_quantile(0.975, df), expected, 0.0005);
        }
        // Closed forms: df = 1 is Cauchy, df = 2 has t = (2p − 1)·√(2 / (4p(1 − p))).
        close(
            t_quantile(0.975, 1.0),
            (std::f64::consts::PI * 0.475).tan(),
            1e-9,
        );
        close(
            t_quantile(0.975, 2.0),
            0.95 * (2.0_f64 / (4.0 * 0.975 * 0.025)).sqrt(),
            1e-9,
        );
        close(t_quantile(0.995, 10.0), 3.169, 0.0005);
        close(t_quantile(0.025, 5.0), -2.571, 0.0005);
        // Many degrees of freedom: the normal quantile.
        close(t_quantile(0.975, 1e7), Z_95, 1e-5);
    }

    #[test]
    fn nps_is_promoters_minus_detractors_with_the_multinomial_interval() {
        let mut counts = NpsCounts::default();
        counts.by_score[10] = 30;
        counts.by_score[9] = 20;
        counts.by_score[8] = 30;
        counts.by_score[3] = 20;
        let nps = nps(&counts).unwrap();
        assert_eq!((nps.promoters, nps.passives, nps.detractors), (50, 30, 20));
        close(nps.estimate.value, 30.0, 1e-12);
        // Var = (0.5 + 0.2 − 0.3²) / 100 = 0.0061.
        let half = Z_95 * 100.0 * 0.0061f64.sqrt();
        close(nps.estimate.lower, 30.0 - half, 1e-9);
        close(nps.estimate.upper, 30.0 + half, 1e-9);
        assert!(super::nps(&NpsCounts::default()).is_none());
    }

    #[test]
    fn nps_intervals_stay_within_the_scale() {
        let mut counts = NpsCounts::default();
        counts.by_score[0] = 2;
        counts.by_score[10] = 0;
        counts.by_score[7] = 1;
        let nps = nps(&counts).unwrap();
        assert!(nps.estimate.lower >= -100.0 && nps.estimate.upper <= 100.0);
    }

    #[test]
    fn csat_uses_the_wilson_interval() {
        let mut counts = CsatCounts::default();
        counts.by_score[4] = 6;
        counts.by_score[3] = 2;
        counts.by_score[0] = 2;
        let csat = csat(&counts).unwrap();
        assert_eq!((csat.satisfied, csat.count), (8, 10));
        close(csat.estimate.value, 80.0, 1e-12);
        // Wilson's interval for 8 of 10: 0.4902 to 0.9433 (published worked example).
        close(csat.estimate.lower, 49.02, 0.01);
        close(csat.estimate.upper, 94.33, 0.01);
        // All satisfied: the upper bound is 100 %, the lower one below it.
        let all = wilson(10, 10);
        close(all.1, 1.0, 1e-12);
        assert!(all.0 < 0.75 && all.0 > 0.6);
    }

    #[test]
    fn ces_uses_a_student_t_interval() {
        let mut counts = CesCounts::default();
        // Scores 2, 3, 4, 5, 6, 2: mean 11/3.
        for score in [2, 3, 4, 5, 6, 2] {
            counts.by_score[score - 1] += 1;
        }
        let ces = ces(&counts).unwrap();
        let mean: f64 = 22.0 / 6.0;
        let variance = [2.0, 3.0, 4.0, 5.0, 6.0, 2.0]
            .iter()
            .map(|s: &f64| (s - mean).powi(2))
            .sum::<f64>()
            / 5.0;
        let half = 2.570_581_836 * (variance / 6.0_f64).sqrt();
        close(ces.estimate.value, mean, 1e-12);
        close(ces.estimate.lower, mean - half, 1e-6);
        close(ces.estimate.upper, mean + half, 1e-6);

        let mut one = CesCounts::default();
        one.by_score[2] = 1;
        let one = super::ces(&one).unwrap();
        assert_eq!((one.estimate.lower, one.estimate.upper), (1.0, 7.0));
    }

    #[test]
    fn differences_add_the_variances_of_independent_groups() {
        let group = Estimate {
            value: -20.0,
            lower: 0.0,
            upper: 0.0,
            variance: 9.0,
        };
        let rest = Estimate {
            value: 10.0,
            lower: 0.0,
            upper: 0.0,
            variance: 16.0,
        };
        let difference = difference(&group, &rest, None);
        close(difference.value, -30.0, 1e-12);
        close(difference.lower, -30.0 - Z_95 * 5.0, 1e-9);
        close(difference.upper, -30.0 + Z_95 * 5.0, 1e-9);
        // Means: Welch's t, wider than the normal one for small groups.
        let welch = super::difference(&group, &rest, Some((5, 5)));
        assert!(welch.upper - welch.lower > difference.upper - difference.lower);
    }
}
