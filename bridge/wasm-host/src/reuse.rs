//! Instances kept between requests: a capture instance (with the store component composed
//! into it) that answered a request whole is used again for a later one, one request at a
//! time, a bounded number of times, and dropped after it has waited idle too long.
//! Instantiating, and resetting the slot an instance leaves in the pool, was most of what
//! wasm added to a capture. Only the inbox's own components, which keep nothing between
//! requests, are kept; a processor gets a fresh instance for every attempt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock, which a test can pause and advance.
use tokio::time::Instant;

/// How instances are reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    /// Requests one instance serves at most; 1 is a fresh instance for every request.
    pub max_uses: u32,
    /// How long an instance waits for its next request before it is dropped.
    pub idle_timeout: Duration,
}

impl Reuse {
    /// A fresh instance for every request.
    pub const NEVER: Reuse = Reuse {
        max_uses: 1,
        idle_timeout: Duration::ZERO,
    };

    fn keeps(&self) -> bool {
        self.max_uses > 1 && !self.idle_timeout.is_zero()
    }
}

/// Idle instances of one component. Their number never exceeds the most requests that ran
/// at once: one is kept only after serving a request, and taken before a new one is made.
pub(crate) struct Kept<T> {
    reuse: Reuse,
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    /// Oldest first: the newest is taken, so the ones past their timeout are at the front.
    idle: Vec<Idle<T>>,
    /// Whether a task is dropping the instances that wait too long.
    sweeping: bool,
}

struct Idle<T> {
    instance: T,
    uses: u32,
    since: Instant,
}

/// An instance and how many requests it has served.
pub(crate) struct Used<T> {
    pub instance: T,
    pub uses: u32,
}

impl<T: Send + 'static> Kept<T> {
    pub fn new(reuse: Reuse) -> Arc<Kept<T>> {
        Arc::new(Kept {
            reuse,
            inner: Mutex::new(Inner {
                idle: Vec::new(),
                sweeping: false,
            }),
        })
    }

    /// The instance that served a request last, if one is waiting.
    pub fn take(&self) -> Option<Used<T>> {
        let (taken, expired) = {
            let mut inner = self.inner.lock().expect("the idle instances");
            let expired = inner.expired(self.reuse.idle_timeout);
            (inner.idle.pop(), expired)
        };
        // Dropped outside the lock: it gives the instance's slot back to the pool.
        drop(expired);
        taken.map(|idle| Used {
            instance: idle.instance,
            uses: idle.uses,
        })
    }

    /// Keeps an instance that answered a request whole for the next one, unless it has
    /// served its share: then it is handed back, for its caller to drop.
    pub fn give_back(self: &Arc<Self>, used: Used<T>) -> Option<Used<T>> {
        if !self.reuse.keeps() || used.uses >= self.reuse.max_uses {
            return Some(used);
        }
        let start_sweeping = {
            let mut inner = self.inner.lock().expect("the idle instances");
            inner.idle.push(Idle {
                instance: used.instance,
                uses: used.uses,
                since: Instant::now(),
            });
            !std::mem::replace(&mut inner.sweeping, true)
        };
        if start_sweeping {
            self.sweep();
        }
        None
    }

    /// Drops the instances that waited past their timeout, as long as any wait, so an inbox
    /// that goes quiet gives their memory back. Without a runtime, they are dropped when
    /// the next request looks.
    fn sweep(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.lock().expect("the idle instances").sweeping = false;
            return;
        };
        let kept = Arc::downgrade(self);
        let every = self.reuse.idle_timeout;
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(kept) = kept.upgrade() else { return };
                let (expired, sweeping) = {
                    let mut inner = kept.inner.lock().expect("the idle instances");
                    let expired = inner.expired(every);
                    inner.sweeping = !inner.idle.is_empty();
                    (expired, inner.sweeping)
                };
                drop(expired);
                if !sweeping {
                    return;
                }
            }
        });
    }

    #[cfg(test)]
    fn idle(&self) -> usize {
        self.inner.lock().unwrap().idle.len()
    }
}

impl<T> Inner<T> {
    /// Takes out the instances idle for `timeout` or longer.
    fn expired(&mut self, timeout: Duration) -> Vec<Idle<T>> {
        let fresh = self
            .idle
            .iter()
            .position(|idle| idle.since.elapsed() < timeout)
            .unwrap_or(self.idle.len());
        self.idle.drain(..fresh).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(max_uses: u32, idle_timeout: Duration) -> Arc<Kept<&'static str>> {
        Kept::new(Reuse {
            max_uses,
            idle_timeout,
        })
    }

    fn used(instance: &'static str, uses: u32) -> Used<&'static str> {
        Used { instance, uses }
    }

    #[tokio::test]
    async fn the_instance_used_last_is_taken_first_until_it_has_served_its_share() {
        let kept = kept(3, Duration::from_secs(60));
        assert!(kept.take().is_none());
        assert!(kept.give_back(used("a", 1)).is_none());
        assert!(kept.give_back(used("b", 2)).is_none());
        let taken = kept.take().unwrap();
        assert_eq!((taken.instance, taken.uses), ("b", 2));
        let handed_back = kept.give_back(used("b", 3)).map(|used| used.instance);
        assert_eq!(handed_back, Some("b"));
        assert_eq!(kept.idle(), 1, "an instance that served 3 is not kept");
        assert_eq!(kept.take().unwrap().instance, "a");
        assert!(kept.take().is_none());
    }

    #[tokio::test]
    async fn nothing_is_kept_when_reuse_is_off() {
        let kept = Kept::new(Reuse::NEVER);
        assert!(kept.give_back(used("a", 0)).is_some());
        assert!(kept.take().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn instances_idle_past_their_timeout_are_dropped_unasked() {
        let kept = kept(100, Duration::from_secs(10));
        assert!(kept.give_back(used("a", 1)).is_none());
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(kept.give_back(used("b", 1)).is_none());
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert_eq!(kept.idle(), 1, "a waited 11 s, b 7 s");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(kept.idle(), 0);
        assert!(kept.give_back(used("c", 1)).is_none());
        assert_eq!(kept.take().unwrap().instance, "c");
    }
}
