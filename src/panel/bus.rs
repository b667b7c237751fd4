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
    /// Time on the wire of one byte (8N1: 10 bits).
    byte_time: Duration,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Bus<T> {
    pub fn new(io: T, baud: u32) -> Self {
        let byte_time = Duration::from_nanos(10_000_000_000 / u64::from(baud.max(1)));
        Bus {
            io,
            buf: Vec::with_capacity(2048),
            byte_time,
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
        // The reply timeout runs from the end of our command on the wire, not from the
        // moment the UART took it: at 9600 baud a 1 kB command takes a second to go out.
        let deadline = link
            .reply_deadline()
            .map(Instant::from_std)
            .expect("a link that sent waits for a reply")
            + self.byte_time * bytes.len() as u32;
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
            let now = Instant::now();
            let until = if self.buf.is_empty() {
                if garbage {
                    deadline.min(now + INTER_CHARACTER_GAP)
                } else {
                    deadline
                }
            } else {
                // A reply is arriving: keep reading while characters keep coming.
                deadline.max(now + INTER_CHARACTER_GAP)
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
