//! The reader of one connection: framing and decoding, in a task of its
//! own so that a panic on hostile input only closes this connection.

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use super::transport::ReadHalf;
use crate::packet::{self, DecodeCtx, Message};

/// Read buffer of a quiet session, and the most a busy one reads at once.
const READ_MIN: usize = 4096;
const READ_MAX: usize = 64 * 1024;

pub(super) type ReadItem = Result<Message, ReadError>;

/// Why the reader stopped.
#[derive(Debug)]
pub(super) enum ReadError {
    /// Malformed input: the NOTIFICATION to send.
    Decode(packet::DecodeError),
    Io(String),
}

/// Reads and decodes messages until the connection or the session ends;
/// after an OPEN, waits for the negotiated parameters before decoding more.
pub(super) async fn read_loop(
    mut rd: ReadHalf,
    tx: mpsc::Sender<ReadItem>,
    pre_open: DecodeCtx,
    ctx_rx: oneshot::Receiver<DecodeCtx>,
) {
    // Small while the peer is quiet (a hundred idle sessions cost little);
    // a peer that fills every read (a table coming in) gets larger reads.
    let mut want = READ_MIN;
    let mut buf = BytesMut::with_capacity(want);
    let mut ctx = pre_open;
    let mut ctx_rx = Some(ctx_rx);
    loop {
        // Decode every whole message in the buffer.
        loop {
            let len = match packet::frame(&buf, ctx.max_len) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(ReadError::Decode(e))).await;
                    return;
                }
            };
            let frame = buf.split_to(len);
            let item = packet::decode(&frame, &ctx).map_err(ReadError::Decode);
            let failed = item.is_err();
            let was_open = matches!(item, Ok(Message::Open(_)));
            if tx.send(item).await.is_err() || failed {
                return;
            }
            if was_open {
                // Wait for the negotiated parameters before decoding more.
                match ctx_rx.take() {
                    Some(rx) => match rx.await {
                        Ok(c) => ctx = c,
                        Err(_) => return,
                    },
                    None => return,
                }
            }
        }
        if buf.capacity() - buf.len() < want / 2 {
            buf.reserve(want);
        }
        let room = buf.capacity() - buf.len();
        match rd.read_buf(&mut buf).await {
            Ok(0) => return,
            Ok(n) if n == room => want = (want * 2).min(READ_MAX),
            Ok(_) => {}
            Err(e) => {
                let _ = tx
                    .send(Err(ReadError::Io(format!("read failed: {e}"))))
                    .await;
                return;
            }
        }
    }
}
