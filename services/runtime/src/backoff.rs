//! Retry delays: message delivery, webhook delivery and journey steps calling other services.

use std::time::Duration;

use rand::Rng;

/// The delay before attempt `attempt + 1`: `base × 2^(attempt−1)`, at most `max`, of which a
/// random half to all (jitter spreads retries of a burst over time).
pub fn backoff(base: Duration, max: Duration, attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let full = base.saturating_mul(2u32.saturating_pow(exponent)).min(max);
    full.mul_f64(rand::rng().random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum_with_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for _ in 0..50 {
            let first = backoff(base, max, 1);
            assert!(first >= base / 2 && first <= base, "{first:?}");
            let third = backoff(base, max, 3);
            assert!(third >= base * 2 && third <= base * 4, "{third:?}");
            let late = backoff(base, max, 30);
            assert!(late >= max / 2 && late <= max, "{late:?}");
        }
    }
}
