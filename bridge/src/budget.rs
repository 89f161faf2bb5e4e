//! A budget of body bytes held in memory at once (`INBOX_MAX_INFLIGHT_BODY_BYTES`). Capture
//! has one: a body that would pass it is answered `503` at once, by its `Content-Length` or
//! as it arrives. The worker has another: an attempt waits for room for its payload before
//! it is taken (so the wait costs none of its lease). A body is up to 25 MB and is held in
//! several copies while it is captured or attempted, so without a budget many at once
//! would cost whatever they add up to.

use std::sync::Arc;

use inbox_core::config::{Config, ConfigError, parsed};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes are counted in units of this many (a semaphore counts at most `u32::MAX` permits
/// at a time).
const UNIT: usize = 1024;

/// Five of GitHub's largest deliveries at once.
const DEFAULT_BYTES: usize = 128 * 1024 * 1024;

/// The size of each budget: `INBOX_MAX_INFLIGHT_BODY_BYTES`.
pub fn budget_bytes(config: &dyn Config) -> Result<usize, ConfigError> {
    parsed(config, "max_inflight_body_bytes", DEFAULT_BYTES)
}

#[derive(Debug, Clone)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    total: u32,
}

/// Bytes taken from a budget, given back when dropped.
pub struct Share {
    held: OwnedSemaphorePermit,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        let most = u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX);
        let total = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .min(most);
        BodyBudget {
            units: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// `bytes` of it if they fit now.
    pub fn try_take(&self, bytes: usize) -> Option<Share> {
        let held = self
            .units
            .clone()
            .try_acquire_many_owned(self.units_of(bytes))
            .ok()?;
        Some(Share { held })
    }

    /// `bytes` of it, once they fit (all of it, for a body larger than the whole budget).
    pub async fn take(&self, bytes: usize) -> Share {
        let held = self
            .units
            .clone()
            .acquire_many_owned(self.units_of(bytes))
            .await
            .expect("the budget is never closed");
        Share { held }
    }

    /// Grows `share` to cover `bytes` in all, if the rest fits now (never past the whole
    /// budget).
    pub fn grow(&self, share: &mut Share, bytes: usize) -> bool {
        let Some(wanted) = u32::try_from(bytes.div_ceil(UNIT))
            .ok()
            .filter(|units| *units <= self.total)
        else {
            return false;
        };
        let held = share.held.num_permits() as u32;
        if wanted <= held {
            return true;
        }
        match self.units.clone().try_acquire_many_owned(wanted - held) {
            Ok(more) => {
                share.held.merge(more);
                true
            }
            Err(_) => false,
        }
    }

    fn units_of(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .min(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shares_are_bounded_and_given_back() {
        let budget = BodyBudget::new(10 * UNIT);
        let mut first = budget.try_take(6 * UNIT).unwrap();
        assert!(budget.try_take(5 * UNIT).is_none());
        assert!(budget.grow(&mut first, 8 * UNIT));
        assert!(!budget.grow(&mut first, 11 * UNIT));
        let second = budget.try_take(2 * UNIT).unwrap();
        drop(first);
        // A body larger than the whole budget waits for all of it, then goes alone.
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.take(100 * UNIT).await }
        });
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "it waits while 2 units are taken");
        drop(second);
        let all = waiting.await.unwrap();
        assert!(budget.try_take(1).is_none());
        drop(all);
        assert!(budget.try_take(10 * UNIT).is_some());
    }
}
