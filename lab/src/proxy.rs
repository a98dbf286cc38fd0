//! A delaying TCP proxy for the store-slowdown drill: listens on a local port, forwards every
//! connection to DynamoDB Local, and holds each chunk for a delay that can be changed while it
//! runs.
//!
//! By default only the **answers** (upstream -> client) are delayed: a write reaches the store at
//! once and commits, but its acknowledgement arrives late, so a client whose attempt timed out
//! does not know whether it was applied. That is the ambiguous case idempotency keys exist for.
//! A request delay (client -> upstream) and a per-connection delay (before connecting upstream)
//! are available too.
//!
//! Chunks are pipelined: each is released `delay` after it arrived (the delay in force when it
//! arrived), so a multi-chunk answer is late by the delay once, not once per chunk.
//!
//! With `writes_only`, only the answers to `TransactWriteItems` are delayed (the proxy reads the
//! `X-Amz-Target` of each request; the SDK does not pipeline, so an answer belongs to the last
//! request of its connection): reads succeed, writes commit, and their acknowledgements are late.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The delays in force, shared with the running proxy.
#[derive(Debug, Default)]
pub(crate) struct Delays {
    /// Added to every chunk from the upstream to the client.
    pub response_ms: AtomicU64,
    /// Added to every chunk from the client to the upstream.
    pub request_ms: AtomicU64,
    /// Added once per connection, before connecting upstream.
    pub connect_ms: AtomicU64,
    /// Delay only the answers to `TransactWriteItems`.
    pub writes_only: AtomicBool,
}

/// The operation name the proxy looks for in a request (`X-Amz-Target: DynamoDB_20120810.<op>`).
const TARGET_PREFIX: &[u8] = b"DynamoDB_20120810.";
const WRITE_TARGET: &[u8] = b"DynamoDB_20120810.TransactWriteItems";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// What went through the proxy.
#[derive(Debug, Default)]
pub(crate) struct ProxyStats {
    pub connections: AtomicU64,
    pub chunks_delayed: AtomicU64,
    pub upstream_failures: AtomicU64,
}

/// A running proxy. Dropping the handle does not stop it; `stop` does (or the runtime ending).
#[derive(Debug, Clone)]
pub(crate) struct ProxyHandle {
    pub listen: SocketAddr,
    pub upstream: String,
    pub delays: Arc<Delays>,
    pub stats: Arc<ProxyStats>,
    stop: Arc<tokio::sync::Notify>,
}

impl ProxyHandle {
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// Sets the delay of answers (the slowdown), effective for chunks arriving from now on.
    pub(crate) fn set_response_delay(&self, delay: Duration) {
        self.delays
            .response_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_request_delay(&self, delay: Duration) {
        self.delays
            .request_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Delays only the answers to writes (true) or every answer (false).
    pub(crate) fn set_writes_only(&self, writes_only: bool) {
        self.delays
            .writes_only
            .store(writes_only, Ordering::Relaxed);
    }

    pub(crate) fn set_connect_delay(&self, delay: Duration) {
        self.delays
            .connect_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Stops accepting connections (open ones finish on their own).
    pub(crate) fn stop(&self) {
        self.stop.notify_waiters();
    }
}

/// Binds `listen` and forwards to `upstream` ("127.0.0.1:8000") on the current tokio runtime.
pub(crate) async fn start(listen: &str, upstream: &str) -> Result<ProxyHandle> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("the proxy cannot listen on {listen}"))?;
    let handle = ProxyHandle {
        listen: listener.local_addr()?,
        upstream: upstream.to_owned(),
        delays: Arc::new(Delays::default()),
        stats: Arc::new(ProxyStats::default()),
        stop: Arc::new(tokio::sync::Notify::new()),
    };
    let accepting = handle.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = accepting.stop.notified() => break,
            };
            let Ok((client, _)) = accepted else {
                continue;
            };
            let connection = accepting.clone();
            tokio::spawn(async move {
                connection.stats.connections.fetch_add(1, Ordering::Relaxed);
                let _ = serve(client, connection).await;
            });
        }
    });
    Ok(handle)
}

async fn serve(client: TcpStream, proxy: ProxyHandle) -> std::io::Result<()> {
    let connect_delay = proxy.delays.connect_ms.load(Ordering::Relaxed);
    if connect_delay > 0 {
        tokio::time::sleep(Duration::from_millis(connect_delay)).await;
    }
    let upstream = match TcpStream::connect(&proxy.upstream).await {
        Ok(stream) => stream,
        Err(error) => {
            proxy
                .stats
                .upstream_failures
                .fetch_add(1, Ordering::Relaxed);
            return Err(error);
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let last_request_writes = Arc::new(AtomicBool::new(false));
    let requests = pump(
        client_read,
        upstream_write,
        proxy.clone(),
        Direction::Request,
        last_request_writes.clone(),
    );
    let responses = pump(
        upstream_read,
        client_write,
        proxy,
        Direction::Response,
        last_request_writes,
    );
    let _ = tokio::join!(requests, responses);
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    Request,
    Response,
}

/// Copies one direction: a reader stamps each chunk with its release time, a writer releases
/// it then. EOF or an error on either side ends the direction and closes the write side.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    proxy: ProxyHandle,
    direction: Direction,
    last_request_writes: Arc<AtomicBool>,
) {
    let (sender, mut receiver) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let delays = proxy.delays.clone();
    let stats = proxy.stats.clone();
    let reader = async move {
        let mut buffer = vec![0_u8; 16 * 1024];
        loop {
            let read = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            let chunk = &buffer[..read];
            let delay = match direction {
                Direction::Request => {
                    if contains(chunk, TARGET_PREFIX) {
                        last_request_writes.store(contains(chunk, WRITE_TARGET), Ordering::Relaxed);
                    }
                    delays.request_ms.load(Ordering::Relaxed)
                }
                Direction::Response => {
                    let writes_only = delays.writes_only.load(Ordering::Relaxed);
                    if writes_only && !last_request_writes.load(Ordering::Relaxed) {
                        0
                    } else {
                        delays.response_ms.load(Ordering::Relaxed)
                    }
                }
            };
            if delay > 0 {
                stats.chunks_delayed.fetch_add(1, Ordering::Relaxed);
            }
            let release = Instant::now() + Duration::from_millis(delay);
            if sender.send((release, chunk.to_vec())).is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((release, chunk)) = receiver.recv().await {
            tokio::time::sleep_until(release).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes what it reads.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0_u8; 64];
                    while let Ok(read) = stream.read(&mut buffer).await {
                        if read == 0 || stream.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    async fn round_trip(stream: &mut TcpStream) -> Duration {
        let started = std::time::Instant::now();
        stream.write_all(b"ping").await.expect("write");
        let mut answer = [0_u8; 4];
        stream.read_exact(&mut answer).await.expect("read");
        assert_eq!(&answer, b"ping");
        started.elapsed()
    }

    #[tokio::test]
    async fn forwards_and_delays_answers_switchably_at_run_time() {
        // GIVEN a proxy in front of an echo server, with no delay
        let upstream = echo_server().await;
        let proxy = start("127.0.0.1:0", &upstream.to_string())
            .await
            .expect("proxy");
        let mut stream = TcpStream::connect(proxy.listen).await.expect("connect");
        // WHEN a round trip is made THEN it is fast
        assert!(round_trip(&mut stream).await < Duration::from_millis(150));
        // WHEN a 300 ms answer delay is switched on, on the same open connection
        proxy.set_response_delay(Duration::from_millis(300));
        let slow = round_trip(&mut stream).await;
        // THEN the answer is late by the delay
        assert!(slow >= Duration::from_millis(300), "{slow:?}");
        assert!(slow < Duration::from_millis(1_000), "{slow:?}");
        // WHEN it is switched off again THEN the next round trip is fast again
        proxy.set_response_delay(Duration::ZERO);
        assert!(round_trip(&mut stream).await < Duration::from_millis(150));
        assert_eq!(proxy.stats.connections.load(Ordering::Relaxed), 1);
        assert!(proxy.stats.chunks_delayed.load(Ordering::Relaxed) >= 1);
        proxy.stop();
    }

    /// Sends one request naming `target` and returns how long its echo took.
    async fn call(stream: &mut TcpStream, target: &str) -> Duration {
        let request =
            format!("POST / HTTP/1.1\r\nx-amz-target: DynamoDB_20120810.{target}\r\n\r\n");
        let started = std::time::Instant::now();
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = vec![0_u8; request.len()];
        stream.read_exact(&mut answer).await.expect("read");
        started.elapsed()
    }

    #[tokio::test]
    async fn writes_only_delays_just_the_answers_to_transact_write_items() {
        // GIVEN a 300 ms delay for the answers to writes only
        let upstream = echo_server().await;
        let proxy = start("127.0.0.1:0", &upstream.to_string())
            .await
            .expect("proxy");
        proxy.set_response_delay(Duration::from_millis(300));
        proxy.set_writes_only(true);
        let mut stream = TcpStream::connect(proxy.listen).await.expect("connect");
        // WHEN a read is answered THEN at once
        let read = call(&mut stream, "GetItem").await;
        assert!(read < Duration::from_millis(150), "{read:?}");
        // WHEN a write is answered THEN late
        let write = call(&mut stream, "TransactWriteItems").await;
        assert!(write >= Duration::from_millis(300), "{write:?}");
        // AND the next read is fast again
        let read = call(&mut stream, "Query").await;
        assert!(read < Duration::from_millis(150), "{read:?}");
    }

    #[tokio::test]
    async fn pipelined_chunks_are_delayed_once_not_cumulatively() {
        // GIVEN a 200 ms answer delay
        let upstream = echo_server().await;
        let proxy = start("127.0.0.1:0", &upstream.to_string())
            .await
            .expect("proxy");
        proxy.set_response_delay(Duration::from_millis(200));
        let mut stream = TcpStream::connect(proxy.listen).await.expect("connect");
        // WHEN three requests are sent back to back
        let started = std::time::Instant::now();
        for _ in 0..3 {
            stream.write_all(b"ping").await.expect("write");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut answers = [0_u8; 12];
        stream.read_exact(&mut answers).await.expect("read");
        // THEN all three answers arrive after about one delay, not three
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(550), "{elapsed:?}");
    }
}
