//! Per-function process figures: start to first `200` on `/healthz`, resident memory at idle,
//! stripped binary size. Each start is a fresh process of the release binary with nothing
//! listening on its sidecar port, which is how a scale-from-zero pod starts (the sidecar comes
//! up beside it); `/healthz` does not depend on the sidecar.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use system_tests::host::{Profile, binary_in, free_port};
use system_tests::procfs::rss_mib;

/// The most a start may take before the measurement fails (a hung binary).
const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ProcessFigures {
    pub function: String,
    pub startup_ms: Vec<f64>,
    pub idle_rss_mib: Vec<f64>,
    pub size_bytes: u64,
}

/// `samples` starts of `function`, the first `rss_samples` of them also measured at idle.
pub fn measure(function: &str, samples: usize, rss_samples: usize) -> anyhow::Result<ProcessFigures> {
    let binary = binary_in(Profile::Release, function)?;
    let size_bytes = std::fs::metadata(&binary).with_context(|| format!("{}", binary.display()))?.len();
    let mut startup_ms = Vec::with_capacity(samples);
    let mut idle_rss_mib = Vec::new();
    for sample in 0..samples {
        let (port, sidecar) = (free_port()?, free_port()?);
        let started = Instant::now();
        let mut child = Command::new(&binary)
            .env_clear()
            .env("APP_PORT", port.to_string())
            .env("APP_HOST", "127.0.0.1")
            .env("DAPR_HTTP_PORT", sidecar.to_string())
            .env("JWT_SECRET", "bench-secret-bench-secret-bench-secret!!")
            // Required, as in production: the token the sidecar would send (nothing calls here).
            .env("APP_API_TOKEN", "bench-app-token-bench-app-token")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            // Kept for the error below: a function that refuses to start says why on stderr.
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let healthy = loop {
            if healthz_ok(port) {
                break Some(started.elapsed());
            }
            if started.elapsed() > START_TIMEOUT || child.try_wait()?.is_some() {
                break None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        if healthy.is_some() && sample < rss_samples {
            // Idle: listening, no traffic, past any lazy start-up work.
            std::thread::sleep(Duration::from_millis(500));
            idle_rss_mib.push(rss_mib(child.id())?);
        }
        let _ = child.kill();
        let status = child.wait();
        let Some(elapsed) = healthy else {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            bail!(
                "{function} did not answer /healthz within {START_TIMEOUT:?} (exit: {status:?}); its stderr: {}",
                stderr.trim()
            );
        };
        startup_ms.push(elapsed.as_secs_f64() * 1000.0);
    }
    Ok(ProcessFigures { function: function.to_owned(), startup_ms, idle_rss_mib, size_bytes })
}

/// One `GET /healthz` over a fresh connection: whether it answered 200.
fn healthz_ok(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(50)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Milliseconds a fixed single-thread integer workload takes: how fast this machine is right
/// now, so that a report can say how fast it was while its figures ran.
pub fn calibration_ms() -> f64 {
    let started = Instant::now();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..200_000_000u64 {
        // xorshift steps: nothing the compiler can fold, no memory traffic.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(std::hint::black_box(i));
    }
    std::hint::black_box(x);
    started.elapsed().as_secs_f64() * 1000.0
}
