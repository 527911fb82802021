//! In-process ingest: the `bgp-speaker` library (not the tortie-rr
//! process) receives the generator's table over loopback TCP. No
//! namespaces: the time runs from the first UPDATE written to the first
//! fresh status (asked for every 0.2 ms) that shows every prefix in the
//! Loc-RIB. A tool for
//! profiling the speaker's receive path (`perf record` works on it
//! directly); the numbers to compare with other speakers are
//! [`crate::ingest`]'s.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bgp_speaker::{DynamicPeerConfig, SpeakerConfig};

use crate::session::{Session, SessionConfig};
use crate::wire;

/// The speaker's address; the generator connects from 127.0.0.2.
const SPEAKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const GENERATOR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Ingests `routes` prefixes `repeat` times, each into a fresh speaker
/// (a tokio runtime with one worker per core, as tortie-rr runs); returns
/// the seconds of each run.
pub fn ingest(routes: u32, repeat: usize) -> Result<Vec<f64>> {
    let blob = Arc::new(wire::announce_blob(&wire::prefixes(routes), GENERATOR));
    let speaker_rt = tokio::runtime::Runtime::new().context("speaker runtime")?;
    let gen_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("generator runtime")?;
    let mut times = Vec::new();
    for _ in 0..repeat {
        crate::stop::check()?;
        times.push(once(&speaker_rt, &gen_rt, routes, &blob)?);
    }
    Ok(times)
}

fn once(
    speaker_rt: &tokio::runtime::Runtime,
    gen_rt: &tokio::runtime::Runtime,
    routes: u32,
    blob: &Arc<Vec<u8>>,
) -> Result<f64> {
    let port = free_port()?;
    let mut config = SpeakerConfig::new(SPEAKER, crate::bed::ASN);
    config.listen = Some(SocketAddr::new(IpAddr::V4(SPEAKER), port));
    config.cluster_id = Some(SPEAKER);
    config.graceful_restart.enabled = false;
    config.dynamic_peers.push(DynamicPeerConfig {
        rr_client: true,
        ..DynamicPeerConfig::new(
            "127.0.0.0/8".parse().expect("a valid prefix"),
            crate::bed::ASN,
        )
    });
    let (handle, best) = speaker_rt
        .block_on(bgp_speaker::start(config))
        .context("starting the speaker")?;
    // As tortie-rr does: nobody reads the best-path stream.
    drop(best);
    let cfg = SessionConfig {
        local: GENERATOR,
        remote: SPEAKER,
        port,
        asn: crate::bed::ASN,
        hold_time: 90,
        expect: 0,
    };
    let gen = gen_rt.block_on(Session::establish(
        &cfg,
        Instant::now() + Duration::from_secs(10),
    ))?;
    let want = u64::from(routes);
    // The speaker publishes counters alone once a second: ask for them
    // (every 0.2 ms; each question is one command to the speaker task).
    let asker = handle.clone();
    let done = speaker_rt.spawn(async move {
        loop {
            match asker.fresh_status().await {
                Ok(s) if s.loc_rib_prefixes >= want => return Some(Instant::now()),
                Ok(_) => tokio::time::sleep(Duration::from_micros(200)).await,
                Err(_) => return None,
            }
        }
    });
    let t0 = Instant::now();
    gen_rt.block_on(gen.send(blob))?;
    let t1 =
        speaker_rt.block_on(async { tokio::time::timeout(Duration::from_secs(120), done).await });
    let secs = match t1 {
        Ok(Ok(Some(t1))) => t1.duration_since(t0).as_secs_f64(),
        _ => bail!(
            "the speaker did not hold {routes} prefixes within 120 s (has {})",
            handle.status().loc_rib_prefixes
        ),
    };
    speaker_rt.block_on(handle.shutdown(bgp_speaker::ShutdownMode::Hard));
    drop(gen);
    Ok(secs)
}

/// A TCP port nobody listens on (the OS picks one, we release it).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind((SPEAKER, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}
