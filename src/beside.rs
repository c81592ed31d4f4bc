//! Two pieces of blocking work that wait on different things (a disk, a
//! server), side by side: the caller waits for the longer one, not for
//! both in a row.

/// `a` on a scoped thread named `name` while this thread runs `b`; both
/// results. `a` is `Fn` so that when no thread can be had it runs here
/// after all, before `b`: the work is done either way, only not side by
/// side. A panic in `a` carries on in the caller, as if `a` had run here.
pub fn both<A: Send, B>(name: &str, a: impl Fn() -> A + Sync, b: impl FnOnce() -> B) -> (A, B) {
    let a = &a;
    std::thread::scope(|sc| {
        match std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(sc, a)
        {
            Ok(t) => {
                let b = b();
                let a = t.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                (a, b)
            }
            Err(e) => {
                tracing::debug!(error = %e, thread = name, "no thread to be had; one after the other");
                (a(), b())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;
    use std::time::Duration;

    use super::both;

    /// Each side waits for the other's message: done one after the other,
    /// the first would wait in vain.
    #[test]
    fn the_two_run_at_the_same_time() {
        let (to_b, from_a) = channel();
        let (to_a, from_b) = channel();
        let from_b = std::sync::Mutex::new(from_b);
        let wait = Duration::from_secs(10);
        let (a, b) = both(
            "test-a",
            || {
                to_b.send(()).ok();
                from_b.lock().unwrap().recv_timeout(wait).is_ok()
            },
            || {
                let heard = from_a.recv_timeout(wait).is_ok();
                to_a.send(()).ok();
                heard
            },
        );
        assert!(a && b, "a heard b: {a}, b heard a: {b}");
    }

    #[test]
    fn a_panic_on_the_thread_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            both("test-a", || -> u8 { panic!("boom") }, || 1u8);
        });
        let message = caught.unwrap_err();
        assert_eq!(message.downcast_ref::<&str>(), Some(&"boom"));
    }
}
