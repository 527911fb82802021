//! Giving memory back after a burst of routes.
//!
//! A table coming in and going again (a peer's full table withdrawn, a
//! route storm) leaves the allocator holding the memory it used: glibc
//! returns only the top of each heap to the kernel, so the process stays at
//! its peak RSS long after the routes are gone. Once the speaker has been
//! quiet for a tick after at least [`BURST`] route changes, it asks glibc
//! to release the free pages in the middle of its heaps too
//! (`malloc_trim(0)`: `MADV_DONTNEED` on whole free pages, nothing moves).

/// Route changes (announced or withdrawn prefixes received) after which a
/// quiet moment gives memory back.
pub(crate) const BURST: u64 = 50_000;

/// Counts route changes and decides when to give memory back.
#[derive(Debug, Default)]
pub(crate) struct Trimmer {
    /// Route changes since memory was last given back.
    changes: u64,
    /// Whether routes arrived since the last tick.
    busy: bool,
}

impl Trimmer {
    /// `n` route changes were received.
    pub fn changed(&mut self, n: usize) {
        self.changes += n as u64;
        self.busy = true;
    }

    /// A tick: true when memory should be given back now (a burst is over:
    /// nothing arrived for a whole tick).
    pub fn tick(&mut self) -> bool {
        let due = !self.busy && self.changes >= BURST;
        if due {
            self.changes = 0;
        }
        self.busy = false;
        due
    }
}

/// Releases free heap pages to the kernel; true if any were. (Public as
/// `give_back_memory` for the processes that embed the speaker.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn give_back() -> bool {
    // SAFETY: malloc_trim only walks the allocator's own free lists under
    // its locks; any thread may call it at any time.
    #[allow(unsafe_code)]
    let released = unsafe { libc::malloc_trim(0) };
    released != 0
}

/// Other allocators return memory by themselves, or not at all.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back() -> bool {
    false
}

/// Caps glibc's malloc arenas at `n` (`mallopt(M_ARENA_MAX)`); true if
/// glibc took it. glibc gives a thread that finds the main heap locked an
/// arena of its own (up to 8 per core), and each keeps its free pages: a
/// process whose threads are only a small blocking pool (the node agent)
/// pays an arena per pool thread for allocations that never contend.
/// Call it before the threads start. (Public as `limit_malloc_arenas`.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas(n: u16) -> bool {
    // SAFETY: mallopt only sets a parameter of the allocator under its
    // lock; M_ARENA_MAX takes any positive count.
    #[allow(unsafe_code)]
    let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, i32::from(n.max(1))) };
    ok == 1
}

/// Other allocators have no arena limit to set.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas(_n: u16) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_an_arena_limit() {
        // The default limit (8 per core) set explicitly: the call must be
        // accepted, and it changes nothing for the other tests.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(limit_arenas(u16::try_from(8 * cores).unwrap_or(u16::MAX)));
    }

    #[test]
    fn memory_goes_back_after_a_burst_and_a_quiet_tick() {
        let mut t = Trimmer::default();
        t.changed(10_000);
        assert!(!t.tick(), "a small change is not a burst");
        t.changed(BURST as usize);
        assert!(!t.tick(), "still busy during this tick");
        assert!(t.tick(), "quiet for a tick after a burst");
        assert!(!t.tick(), "once per burst");
        // A steady trickle that adds up is a burst too, once it pauses.
        for _ in 0..10 {
            t.changed(BURST as usize / 5);
            assert!(!t.tick());
        }
        assert!(t.tick());
    }

    /// Resident anonymous memory of this process, in KiB.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
        let line = status
            .lines()
            .find(|l| l.starts_with("RssAnon:"))
            .expect("RssAnon in /proc/self/status");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn free_pages_in_the_middle_of_the_heap_go_back() {
        // 32 MB of small blocks, then one more that stays: freeing the
        // others leaves a hole below it, which free() alone keeps.
        let blocks: Vec<Vec<u8>> = (0..8192).map(|_| vec![1u8; 4000]).collect();
        let pin = vec![1u8; 4000];
        drop(blocks);
        let before = rss_anon_kib();
        assert!(give_back(), "malloc_trim found nothing to release");
        let after = rss_anon_kib();
        assert!(
            before.saturating_sub(after) > 16 * 1024,
            "RssAnon {before} KiB -> {after} KiB"
        );
        drop(pin);
    }
}
