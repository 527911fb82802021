//! Our side of one BGP session, light enough to run a hundred in one
//! process: OPEN/KEEPALIVE exchange, a keepalive task, and a reader that
//! decodes UPDATEs and counts the generated prefixes it holds.
//!
//! Used as the generator (sends pre-encoded UPDATEs, see [`crate::wire`]),
//! as an RR client (counts what the reflector sends), and as the keepalive
//! probe (records the longest silence from the peer).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bgp_speaker::packet::{decode, encode_keepalive, frame, DecodeCtx, Message, MAX_LEN};
use bgp_speaker::Afi;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpSocket;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::wire;

/// Who we are and whom we talk to.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Our address (bound before connecting); also our router id.
    pub local: Ipv4Addr,
    /// The speaker under test.
    pub remote: Ipv4Addr,
    /// Its TCP port (179).
    pub port: u16,
    /// Our AS (the same as the peer's: every benchmark session is iBGP).
    pub asn: u32,
    /// Hold time proposed in our OPEN.
    pub hold_time: u16,
    /// How many generated prefixes (see [`wire::prefixes`]) to count.
    pub expect: u32,
}

/// Live counters of one session, read by the benchmark while it runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Distinct generated prefixes currently held (announced, not withdrawn).
    pub held: AtomicU32,
    /// UPDATE messages received.
    pub updates: AtomicU64,
    /// When `held` first reached `expect`.
    pub complete_at: OnceLock<Instant>,
    /// Longest time between two received messages after Established, ms.
    pub max_gap_ms: AtomicU64,
    /// Why the session ended, if it did.
    pub closed: OnceLock<String>,
}

/// An Established session; its tasks stop on drop.
#[derive(Debug)]
pub struct Session {
    /// The session's counters.
    pub counters: Arc<Counters>,
    /// When the session reached Established (our KEEPALIVE sent and theirs
    /// received).
    pub established_at: Instant,
    /// The hold time both sides agreed on.
    pub hold_time: u16,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    tasks: Vec<JoinHandle<()>>,
}

// ===== impl Session =====

impl Session {
    /// Connects (retrying every 100 ms until `deadline`), exchanges OPEN
    /// and KEEPALIVE, and starts the reader and keepalive tasks.
    pub async fn establish(cfg: &SessionConfig, deadline: Instant) -> Result<Session> {
        let stream = loop {
            match connect(cfg).await {
                Ok(s) => break s,
                // Not listening yet: retry until the deadline.
                Err(_) if Instant::now() + Duration::from_millis(100) < deadline => {
                    crate::stop::check()?;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(e.context(format!("{} -> {}: no session", cfg.local, cfg.remote)))
                }
            }
        };
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let (mut rd, mut wr) = stream.into_split();
        wr.write_all(&wire::open(cfg.asn, cfg.local, cfg.hold_time))
            .await?;
        let mut buf = Vec::with_capacity(1 << 16);
        let left = deadline.saturating_duration_since(Instant::now());
        let open = tokio::time::timeout(left, read_open(&mut rd, &mut buf, cfg))
            .await
            .map_err(|_| {
                anyhow!(
                    "{}: no OPEN from {} before the deadline",
                    cfg.local,
                    cfg.remote
                )
            })??;
        wr.write_all(&encode_keepalive()).await?;
        let ctx = DecodeCtx {
            asn4: open.capabilities.four_octet_as.is_some(),
            ibgp: open.asn == cfg.asn,
            max_len: MAX_LEN,
            families: vec![Afi::Ipv4],
        };
        let hold_time = cfg.hold_time.min(open.hold_time);
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, read_keepalive(&mut rd, &mut buf, &ctx))
            .await
            .map_err(|_| {
                anyhow!(
                    "{}: no KEEPALIVE from {} before the deadline",
                    cfg.local,
                    cfg.remote
                )
            })??;
        let established_at = Instant::now();
        let counters = Arc::new(Counters::default());
        let writer = Arc::new(Mutex::new(wr));
        let mut tasks = vec![tokio::spawn(reader(
            rd,
            buf,
            ctx,
            cfg.expect,
            counters.clone(),
        ))];
        if hold_time > 0 {
            let every = Duration::from_secs(u64::from(hold_time / 3).max(1));
            tasks.push(tokio::spawn(keepalives(
                writer.clone(),
                every,
                counters.clone(),
            )));
        }
        Ok(Session {
            counters,
            established_at,
            hold_time,
            writer,
            tasks,
        })
    }

    /// Writes pre-encoded messages (whole messages only: keepalives wait).
    pub async fn send(&self, bytes: &[u8]) -> Result<()> {
        let mut w = self.writer.lock().await;
        w.write_all(bytes).await.context("writing UPDATEs")
    }

    /// The reason the session ended, if it did.
    pub fn closed(&self) -> Option<&String> {
        self.counters.closed.get()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

// ===== helpers =====

async fn connect(cfg: &SessionConfig) -> Result<tokio::net::TcpStream> {
    let sock = TcpSocket::new_v4().context("socket")?;
    sock.bind(SocketAddr::V4(SocketAddrV4::new(cfg.local, 0)))
        .with_context(|| format!("binding {}", cfg.local))?;
    let to = SocketAddr::V4(SocketAddrV4::new(cfg.remote, cfg.port));
    sock.connect(to)
        .await
        .with_context(|| format!("connecting to {to}"))
}

/// Reads one whole message into `buf` (which may hold more) and returns its
/// length, or `None` on EOF.
async fn next_message(rd: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> Result<Option<usize>> {
    loop {
        if let Some(n) = frame(buf, MAX_LEN).map_err(|e| anyhow!("bad framing: {e}"))? {
            return Ok(Some(n));
        }
        let old = buf.len();
        buf.resize(old + (1 << 16), 0);
        let got = rd.read(&mut buf[old..]).await;
        buf.truncate(old + *got.as_ref().unwrap_or(&0));
        if got.context("reading")? == 0 {
            return Ok(None);
        }
    }
}

async fn read_open(
    rd: &mut OwnedReadHalf,
    buf: &mut Vec<u8>,
    cfg: &SessionConfig,
) -> Result<bgp_speaker::packet::Open> {
    let ctx = DecodeCtx {
        asn4: true,
        ibgp: true,
        max_len: MAX_LEN,
        families: vec![Afi::Ipv4],
    };
    let n = next_message(rd, buf)
        .await?
        .ok_or_else(|| anyhow!("{}: {} closed before OPEN", cfg.local, cfg.remote))?;
    let msg = decode(&buf[..n], &ctx).map_err(|e| anyhow!("decoding OPEN: {e}"));
    buf.drain(..n);
    match msg? {
        Message::Open(o) => Ok(o),
        Message::Notification(n) => bail!("NOTIFICATION {}/{} instead of OPEN", n.code, n.subcode),
        other => bail!("expected OPEN, got {other:?}"),
    }
}

async fn read_keepalive(rd: &mut OwnedReadHalf, buf: &mut Vec<u8>, ctx: &DecodeCtx) -> Result<()> {
    let n = next_message(rd, buf)
        .await?
        .ok_or_else(|| anyhow!("closed before KEEPALIVE"))?;
    let msg = decode(&buf[..n], ctx).map_err(|e| anyhow!("decoding KEEPALIVE: {e}"));
    buf.drain(..n);
    match msg? {
        Message::Keepalive => Ok(()),
        Message::Notification(n) => {
            bail!("NOTIFICATION {}/{} instead of KEEPALIVE", n.code, n.subcode)
        }
        other => bail!("expected KEEPALIVE, got {other:?}"),
    }
}

/// Decodes every message; keeps a bitmap of the generated prefixes held.
async fn reader(
    mut rd: OwnedReadHalf,
    mut buf: Vec<u8>,
    ctx: DecodeCtx,
    expect: u32,
    c: Arc<Counters>,
) {
    let mut bits = vec![0u64; (expect as usize).div_ceil(64)];
    let mut held = 0u32;
    let mut last = Instant::now();
    let mut start = 0usize;
    let reason = loop {
        let n = match next_message_at(&mut rd, &mut buf, &mut start).await {
            Ok(Some(n)) => n,
            Ok(None) => break "connection closed by the peer".to_string(),
            Err(e) => break format!("{e:#}"),
        };
        let now = Instant::now();
        let gap = now.duration_since(last).as_millis() as u64;
        c.max_gap_ms.fetch_max(gap, Ordering::Relaxed);
        last = now;
        let msg = decode(&buf[start..start + n], &ctx);
        start += n;
        match msg {
            Ok(Message::Update(u)) => {
                c.updates.fetch_add(1, Ordering::Relaxed);
                for p in &u.withdrawn {
                    if let Some(i) = wire::prefix_index(p, expect) {
                        let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
                        if bits[w] & b != 0 {
                            bits[w] &= !b;
                            held -= 1;
                        }
                    }
                }
                for p in u.announced.iter().flat_map(|a| &a.nlri) {
                    if let Some(i) = wire::prefix_index(p, expect) {
                        let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
                        if bits[w] & b == 0 {
                            bits[w] |= b;
                            held += 1;
                        }
                    }
                }
                c.held.store(held, Ordering::Relaxed);
                if expect > 0 && held == expect {
                    let _ = c.complete_at.set(now);
                }
            }
            Ok(Message::Notification(n)) => {
                break format!("NOTIFICATION {}/{} received", n.code, n.subcode)
            }
            Ok(_) => {}
            Err(e) => break format!("decode error: {e}"),
        }
    };
    let _ = c.closed.set(reason);
}

/// Like [`next_message`], but consumed bytes are dropped lazily: `start`
/// is where the next message begins.
async fn next_message_at(
    rd: &mut OwnedReadHalf,
    buf: &mut Vec<u8>,
    start: &mut usize,
) -> Result<Option<usize>> {
    loop {
        if let Some(n) = frame(&buf[*start..], MAX_LEN).map_err(|e| anyhow!("bad framing: {e}"))? {
            return Ok(Some(n));
        }
        buf.drain(..*start);
        *start = 0;
        let old = buf.len();
        buf.resize(old + (1 << 16), 0);
        let got = rd.read(&mut buf[old..]).await;
        buf.truncate(old + *got.as_ref().unwrap_or(&0));
        if got.context("reading")? == 0 {
            return Ok(None);
        }
    }
}

async fn keepalives(w: Arc<Mutex<OwnedWriteHalf>>, every: Duration, c: Arc<Counters>) {
    let ka = encode_keepalive();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Err(e) = w.lock().await.write_all(&ka).await {
            let _ = c.closed.set(format!("sending KEEPALIVE: {e}"));
            return;
        }
    }
}
