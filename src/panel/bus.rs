//! The thin driver of one RS-485 bus: write what the link says, read until a reply for that
//! PD, a timeout, or garbage followed by silence. The port is any byte stream (a tokio-serial
//! port in production, a pty in tests). Only the task that owns the bus calls it.

use std::io;
use std::time::Duration;

use leasegate_osdp::codec::{decode, DecodeError};
use leasegate_osdp::cp::{Event, PdLink};
use rand::rngs::OsRng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

/// OSDP's largest gap between the characters of one frame: silence this long after garbage
/// means the reply is not coming.
pub const INTER_CHARACTER_GAP: Duration = Duration::from_millis(20);

pub struct Bus<T> {
    io: T,
    buf: Vec<u8>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Bus<T> {
    pub fn new(io: T) -> Self {
        Bus {
            io,
            buf: Vec::with_capacity(2048),
        }
    }

    /// Give `link` its turn: None if it had nothing to send, else the events of the exchange.
    /// An I/O error means the port itself failed (unplugged adapter): the caller reopens it.
    pub async fn turn(&mut self, link: &mut PdLink) -> io::Result<Option<Vec<Event>>> {
        let Some(bytes) = link.poll_transmit(Instant::now().into_std(), &mut OsRng) else {
            return Ok(None);
        };
        // Half duplex: whatever arrived before our command is not its reply.
        self.buf.clear();
        self.io.write_all(&bytes).await?;
        self.io.flush().await?;
        let deadline = link
            .reply_deadline()
            .map(Instant::from_std)
            .expect("a link that sent waits for a reply");
        let mut garbage = false;
        let mut chunk = [0u8; 1024];
        loop {
            loop {
                match decode(&self.buf) {
                    Ok((frame, used)) => {
                        self.buf.drain(..used);
                        // Our own echo (some adapters) and other PDs' frames are skipped.
                        if frame.reply && frame.address == link.address() {
                            return Ok(Some(link.handle_reply(&frame, Instant::now().into_std())));
                        }
                    }
                    Err(DecodeError::Incomplete) => break,
                    Err(_) => {
                        self.buf.drain(..1);
                        garbage = true;
                    }
                }
            }
            let until = if garbage && self.buf.is_empty() {
                deadline.min(Instant::now() + INTER_CHARACTER_GAP)
            } else {
                deadline
            };
            match timeout_at(until, self.io.read(&mut chunk)).await {
                Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(Some(link.handle_timeout(Instant::now().into_std()))),
            }
        }
    }
}
