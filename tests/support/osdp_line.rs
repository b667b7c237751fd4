//! An RS-485 line for OSDP tests and benches: pseudo-terminal pairs (socat), and a relay
//! between two of them that can flip bits and pace bytes like a half-duplex 8N1 line.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_serial::SerialPortBuilderExt;

/// A socat-made pty pair; socat is killed (by its pid) on drop.
pub struct PtyPair {
    pub a: PathBuf,
    pub b: PathBuf,
    child: Child,
}

impl PtyPair {
    pub fn new(dir: &Path, name: &str) -> PtyPair {
        let a = dir.join(format!("{name}-a"));
        let b = dir.join(format!("{name}-b"));
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (Debian package socat)");
        // Owned at once, so socat is reaped on every path (Drop).
        let pair = PtyPair { a, b, child };
        for _ in 0..500 {
            if pair.a.exists() && pair.b.exists() {
                return pair;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "socat did not create {} and {}",
            pair.a.display(),
            pair.b.display()
        );
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn open(path: &Path) -> tokio_serial::SerialStream {
    tokio_serial::new(path.to_string_lossy(), 115_200)
        .open_native_async()
        .expect("open pty")
}

/// What the relay does to the bytes.
#[derive(Clone)]
pub struct LineControl {
    /// Probability per byte of one flipped bit, in millionths.
    flip_ppm: Arc<AtomicU64>,
    pub flipped: Arc<AtomicU64>,
}

impl LineControl {
    pub fn set_flip_rate(&self, per_byte: f64) {
        self.flip_ppm
            .store((per_byte * 1e6) as u64, Ordering::Relaxed);
    }
}

/// Half-duplex 8N1 timing: 10 bit times per byte, and a turnaround whenever the direction
/// of transmission changes.
#[derive(Clone, Copy)]
pub struct Pacing {
    pub baud: u32,
    pub turnaround: Duration,
}

struct Clock {
    free_at: Instant,
    last_dir: u8,
}

/// Relay bytes between the pty ends `a` and `b` until the returned task is aborted.
pub fn relay(
    a: &Path,
    b: &Path,
    pacing: Option<Pacing>,
) -> (LineControl, tokio::task::JoinHandle<()>) {
    let ctl = LineControl {
        flip_ppm: Arc::new(AtomicU64::new(0)),
        flipped: Arc::new(AtomicU64::new(0)),
    };
    let (ar, aw) = tokio::io::split(open(a));
    let (br, bw) = tokio::io::split(open(b));
    let clock = Arc::new(Mutex::new(Clock {
        free_at: Instant::now(),
        last_dir: 0,
    }));
    let one = tokio::spawn(pump(ar, bw, 1, ctl.clone(), pacing, clock.clone()));
    let two = tokio::spawn(pump(br, aw, 2, ctl.clone(), pacing, clock));
    let task = tokio::spawn(async move {
        let _ = tokio::join!(one, two);
    });
    (ctl, task)
}

async fn pump<R, W>(
    mut r: R,
    mut w: W,
    dir: u8,
    ctl: LineControl,
    pacing: Option<Pacing>,
    clock: Arc<Mutex<Clock>>,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut buf = [0u8; 4096];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let ppm = ctl.flip_ppm.load(Ordering::Relaxed);
        if ppm > 0 {
            for byte in &mut buf[..n] {
                if rng.gen_range(0..1_000_000) < ppm {
                    *byte ^= 1 << rng.gen_range(0..8);
                    ctl.flipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if let Some(p) = pacing {
            let end = {
                let mut c = clock.lock().await;
                let mut start = c.free_at.max(Instant::now());
                if c.last_dir != dir {
                    start += p.turnaround;
                    c.last_dir = dir;
                }
                let end =
                    start + Duration::from_nanos(n as u64 * 10 * 1_000_000_000 / u64::from(p.baud));
                c.free_at = end;
                end
            };
            tokio::time::sleep_until(end).await;
        }
        if w.write_all(&buf[..n]).await.is_err() || w.flush().await.is_err() {
            return;
        }
    }
}
