//! End-to-end smoke test of the benchmark harness against tortie-rr, with
//! tiny sizes: ingest, fan-out and keepalive-under-load each run once and
//! must reach their end state. It is a normal test because it is fast; it
//! fails if it ever takes 60 s or more, so that it leaves CI's
//! `cargo test` rather than slowing it down unnoticed.
//!
//! Needs root (network namespaces) and a tortie-rr binary
//! (`$TORTIE_RR_BIN`, else the one this build made, else the workspace's
//! `target/release/tortie-rr` or `target/debug/tortie-rr`);
//! without them it prints why and skips.

use std::time::{Duration, Instant};

use tortie_bench::receivers::Kind;
use tortie_bench::{fanout, find_tortie_rr, ingest};

#[test]
fn harness_measures_tortie_rr_end_to_end() {
    const TEST: &str = "harness_measures_tortie_rr_end_to_end";
    if !tortie_bench::is_root() {
        return tortie_testkit::missing(TEST, "needs root for network namespaces");
    }
    let Some(bin) = find_tortie_rr() else {
        return tortie_testkit::missing(
            TEST,
            "no tortie-rr binary; run `cargo build -p tortie-rr` or set TORTIE_RR_BIN",
        );
    };
    let start = Instant::now();

    // Ingest: all 2000 prefixes reach the Loc-RIB; memory was read twice.
    let row = ingest::ingest(Kind::Tortie, 2000, &bin).expect("ingest");
    assert_eq!(row.routes, 2000);
    assert!(row.secs > 0.0 && row.secs < 30.0, "{row:?}");
    assert!(
        row.before.rss_kib > 0 && row.after.hwm_kib >= row.after.rss_kib,
        "{row:?}"
    );

    // Fan-out: every one of 5 clients decoded all 500 prefixes.
    let row = fanout::fanout(Kind::Tortie, 5, 500, &bin).expect("fanout");
    assert_eq!((row.clients, row.routes), (5, 500));
    assert!(row.secs > 0.0 && row.median_secs <= row.secs, "{row:?}");

    // Keepalive under load: the holdTime-3 probe stays up and hears from
    // tortie-rr at least every hold time.
    let row = ingest::keepalive(Kind::Tortie, 2000, 1, &bin).expect("keepalive");
    assert_eq!(row.hold_time, 3);
    assert_eq!(row.probe_closed, None, "{row:?}");
    assert!(row.rounds >= 1 && row.max_silence_ms < 3000, "{row:?}");
    assert!(row.receiver_view.contains("Established"), "{row:?}");

    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "the smoke test took {took:?}: too slow for CI, mark it #[ignore]"
    );
}
