//! The engine's sense of time. Production reads the system clock; tests hand the service a
//! [`Clock::manual`] and move it forward, so a day-long journey runs in milliseconds. Every
//! time the engine compares (wake times, windows, quiet hours, goal windows) comes from here.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// A clock in microseconds since the Unix epoch; cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<ManualTime>>,
}

#[derive(Debug)]
struct ManualTime {
    now_us: AtomicI64,
    /// Wakes the engine when the time moves, so that timers now due fire at once.
    moved: Notify,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stands at `start_us` until moved by [`Clock::advance`] or [`Clock::set`].
    pub fn manual(start_us: i64) -> Self {
        Self {
            manual: Some(Arc::new(ManualTime {
                now_us: AtomicI64::new(start_us),
                moved: Notify::new(),
            })),
        }
    }

    pub fn now_us(&self) -> i64 {
        match &self.manual {
            Some(manual) => manual.now_us.load(Ordering::SeqCst),
            None => throughline_runtime::time::now_us(),
        }
    }

    /// Moves a manual clock forward by `by`; the system clock cannot be moved.
    pub fn advance(&self, by: Duration) {
        if let Some(manual) = &self.manual {
            let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX / 4);
            manual.now_us.fetch_add(by, Ordering::SeqCst);
            manual.moved.notify_waiters();
        }
    }

    /// Sets a manual clock to `now_us`.
    pub fn set(&self, now_us: i64) {
        if let Some(manual) = &self.manual {
            manual.now_us.store(now_us, Ordering::SeqCst);
            manual.moved.notify_waiters();
        }
    }

    /// Waits for `timeout` of real time, or less if a manual clock is moved meanwhile.
    pub async fn sleep(&self, timeout: Duration) {
        match &self.manual {
            Some(manual) => {
                let _ = tokio::time::timeout(timeout, manual.moved.notified()).await;
            }
            None => tokio::time::sleep(timeout).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now_us(), 1_000);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(clock.now_us(), 1_000 + 3_600_000_000);
        clock.set(5);
        assert_eq!(clock.now_us(), 5);
    }

    #[test]
    fn the_system_clock_follows_real_time() {
        let clock = Clock::system();
        let before = throughline_runtime::time::now_us();
        let now = clock.now_us();
        assert!(now >= before && now - before < 1_000_000);
    }
}
