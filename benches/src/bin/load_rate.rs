//! Fixed-rate HTTP load client of the load bench (`benches/load/run.sh`):
//! sends `POST` requests at a constant total rate over keep-alive HTTP/1.1
//! connections for a bounded time, and prints latency percentiles.
//!
//! Each connection owns an even share of the schedule (request `i` of a
//! connection is due at `start + offset + i * connections / rate`). Latency
//! is measured from when a request was *due*, not from when it was sent, so a
//! server that falls behind is charged for the queueing it causes (no
//! coordinated omission). The run stops at `--duration` however the server
//! behaves; requests still in flight then are counted as unfinished.
//!
//! ```sh
//! load-rate --url http://127.0.0.1:8080/v1/feedback --rate 20000 --duration 10 \
//!     --connections 64 --body-file benches/load/feedback.json -H 'X-Userz-Public-Key: pub_x'
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "load-rate", about = "Constant-rate HTTP POST load with latency percentiles")]
struct Args {
    /// Target URL (`http://` on a loopback address).
    #[arg(long)]
    url: String,
    /// Total requests per second across all connections.
    #[arg(long)]
    rate: f64,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// File holding the request body (JSON).
    #[arg(long)]
    body_file: std::path::PathBuf,
    /// Extra request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
}

/// What one connection observed.
struct Tally {
    hist: Histogram<u64>,
    ok: u64,
    non_2xx: u64,
    errors: u64,
    unfinished: u64,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Failure> {
    let args = Args::parse();
    if !(args.rate > 0.0 && args.duration > 0.0 && args.connections > 0) {
        return Err("--rate, --duration and --connections must be positive".into());
    }
    let uri: http::Uri = args.url.parse()?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("--url {} must be http://", args.url).into());
    }
    let host = uri.host().ok_or("--url has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let ip: std::net::IpAddr = host.trim_matches(['[', ']']).parse().or_else(|_| {
        if host == "localhost" {
            Ok("127.0.0.1".parse()?)
        } else {
            Err::<_, Failure>(format!("--url host {host} is not a loopback IP").into())
        }
    })?;
    if !ip.is_loopback() {
        return Err(format!("--url host {host} is not a loopback address").into());
    }
    let mut headers = http::HeaderMap::new();
    for h in &args.headers {
        let (name, value) = h.split_once(':').ok_or_else(|| format!("header {h:?} is not `Name: value`"))?;
        headers.append(http::HeaderName::try_from(name.trim())?, http::HeaderValue::try_from(value.trim())?);
    }
    if !headers.contains_key(http::header::CONTENT_TYPE) {
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    }
    headers.insert(http::header::HOST, http::HeaderValue::try_from(format!("{host}:{port}"))?);
    let body = Bytes::from(std::fs::read(&args.body_file)?);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let tallies = runtime.block_on(async {
        let start = Instant::now() + Duration::from_millis(200);
        let end = start + Duration::from_secs_f64(args.duration);
        let interval = Duration::from_secs_f64(args.connections as f64 / args.rate);
        let shared = Arc::new((path, headers, body));
        let mut tasks = Vec::with_capacity(args.connections);
        for c in 0..args.connections {
            let offset = interval.mul_f64(c as f64 / args.connections as f64);
            let shared = shared.clone();
            let addr = std::net::SocketAddr::new(ip, port);
            tasks.push(tokio::spawn(connection(addr, shared, start + offset, end, interval)));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await);
        }
        out
    });

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut non_2xx, mut errors, mut unfinished) = (0, 0, 0, 0);
    for t in tallies {
        let t = t?;
        hist.add(&t.hist)?;
        ok += t.ok;
        non_2xx += t.non_2xx;
        errors += t.errors;
        unfinished += t.unfinished;
    }
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!("target_rate: {:.0} req/s over {} connections for {:.1} s", args.rate, args.connections, args.duration);
    println!(
        "completed: {} ({:.0} req/s), 2xx: {ok}, non-2xx: {non_2xx}, errors: {errors}, unfinished: {unfinished}",
        hist.len(),
        hist.len() as f64 / args.duration
    );
    println!(
        "latency_ms: p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0
    );
    println!("p99_ms: {:.3}", us(0.99));
    Ok(())
}

/// Drives one keep-alive connection through its share of the schedule.
async fn connection(
    addr: std::net::SocketAddr,
    shared: Arc<(String, http::HeaderMap, Bytes)>,
    first: Instant,
    end: Instant,
    interval: Duration,
) -> Tally {
    let mut tally = Tally {
        hist: Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|e| panic!("histogram bounds: {e}")),
        ok: 0,
        non_2xx: 0,
        errors: 0,
        unfinished: 0,
    };
    let mut sender = None;
    let mut due = first;
    while due < end {
        tokio::time::sleep_until(due.into()).await;
        let remaining = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, one(addr, &mut sender, &shared)).await {
            Err(_) => {
                tally.unfinished += 1;
                break;
            }
            Ok(Err(_)) => {
                tally.errors += 1;
                sender = None;
            }
            Ok(Ok(status)) => {
                let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                let _ = tally.hist.record(micros.min(60_000_000));
                if status.is_success() {
                    tally.ok += 1;
                } else {
                    tally.non_2xx += 1;
                }
            }
        }
        due += interval;
    }
    tally
}

/// Sends one request on the connection, opening it first if needed.
async fn one(
    addr: std::net::SocketAddr,
    sender: &mut Option<http1::SendRequest<Full<Bytes>>>,
    shared: &(String, http::HeaderMap, Bytes),
) -> Result<http::StatusCode, Failure> {
    let s = match sender {
        Some(s) if !s.is_closed() => s,
        _ => {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (s, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender.insert(s)
        }
    };
    s.ready().await?;
    let (path, headers, body) = shared;
    let mut request = http::Request::post(path.as_str()).body(Full::new(body.clone()))?;
    *request.headers_mut() = headers.clone();
    let response = s.send_request(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}
