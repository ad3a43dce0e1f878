//! Open-loop HTTP/1.1 load for bench/run: requests at a fixed total rate over a fixed set of
//! keep-alive connections, each request's latency measured from when it was *due*, not from
//! when it could be sent (wrk2's correction for coordinated omission). A connection still
//! waiting for an answer when its next request is due sends that request late, and the wait
//! counts in the request's latency, as it would for a sender that does not wait for us.
//!
//! Connection `c` of `C` sends the requests `i = c, c + C, c + 2C, …`, request `i` due at
//! `i / rate` seconds after the start. With `--deliveries FILE` (`signature<TAB>body` lines,
//! bench/lib/payloads.py) request `i` posts line `i` to `/v1/webhooks/idnow`, so no delivery
//! is sent twice; oha, which can only pick bodies at random under one fixed set of headers,
//! cannot send distinct signed deliveries.
//!
//! With `--arrivals poisson`, each connection's requests come as a Poisson process of rate
//! `rate / C` instead (exponential gaps, a fixed seed per connection), the schedule of
//! `pgbench --rate` with one thread per client (`-j` = `-c`), so that the two tails compare:
//! bursts as independent senders make them. Each connection still sends its share of the
//! requests, so connections end at slightly different times (a spread of about
//! `sqrt(n) / (rate / C)` seconds for `n` requests each): the last second's rate tails off.
//!
//! Prints one JSON line: the figures bench/run keeps (milliseconds; `created` counts 201s).
//!
//!   openloop HOST:PORT --rate N --seconds S --connections C [--header 'Name: value']…
//!            [--arrivals even|poisson] (--get PATH | --deliveries FILE)

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

struct Args {
    address: String,
    rate: f64,
    seconds: f64,
    connections: usize,
    headers: Vec<String>,
    target: Target,
    arrivals: Arrivals,
}

#[derive(Clone, Copy, PartialEq)]
enum Arrivals {
    /// Request `i` due at `i / rate`.
    Even,
    /// Each connection's requests a Poisson process of rate `rate / connections`.
    Poisson,
}

/// SplitMix64: a fixed, seeded sequence of uniform numbers, so that runs repeat their
/// schedule. A dozen lines instead of a dependency for a benchmark's schedule.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An exponentially distributed gap of mean `1 / rate` seconds.
    fn exponential(&mut self, rate: f64) -> f64 {
        // Uniform in [0, 1) from the top 53 bits; 1 - u is in (0, 1], so its log is finite.
        let uniform = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        -(1.0 - uniform).ln() / rate
    }
}

enum Target {
    Get(String),
    Deliveries(Vec<String>),
}

#[derive(Default)]
struct Tally {
    /// Microseconds from when each request was due to its answer's last byte.
    corrected: Vec<u64>,
    /// Microseconds from when each request was sent to its answer's last byte.
    service: Vec<u64>,
    ok: u64,
    created: u64,
    non_2xx: u64,
    errors: u64,
    late: u64,
    reused: bool,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("openloop: {message}");
            return ExitCode::from(2);
        }
    };
    let args = Arc::new(args);
    let total = (args.rate * args.seconds).round() as usize;
    let barrier = Arc::new(Barrier::new(args.connections + 1));
    let start = Arc::new(std::sync::OnceLock::<Instant>::new());
    let threads: Vec<_> = (0..args.connections)
        .map(|c| {
            let (args, barrier, start) = (args.clone(), barrier.clone(), start.clone());
            thread::spawn(move || connection(&args, c, total, &barrier, &start))
        })
        .collect();
    barrier.wait(); // every connection open
    start
        .set(Instant::now() + Duration::from_millis(50))
        .expect("set once");
    barrier.wait();
    let mut all = Tally::default();
    for thread in threads {
        match thread.join() {
            Ok(Ok(tally)) => {
                all.corrected.extend(tally.corrected);
                all.service.extend(tally.service);
                all.ok += tally.ok;
                all.created += tally.created;
                all.non_2xx += tally.non_2xx;
                all.errors += tally.errors;
                all.late += tally.late;
                all.reused |= tally.reused;
            }
            Ok(Err(message)) => {
                eprintln!("openloop: {message}");
                return ExitCode::FAILURE;
            }
            Err(_) => return ExitCode::FAILURE,
        }
    }
    let elapsed = start.get().map_or(0.0, |t| t.elapsed().as_secs_f64());
    all.corrected.sort_unstable();
    all.service.sort_unstable();
    let ms = |values: &[u64], p: f64| percentile(values, p) as f64 / 1000.0;
    println!(
        "{{\"requests\":{},\"seconds\":{:.3},\"rate\":{},\"connections\":{},\"arrivals\":\"{}\",\
         \"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3},\
         \"uncorrected_p99_ms\":{:.3},\"ok\":{},\"created\":{},\"non_2xx\":{},\
         \"socket_errors\":{},\"late\":{},\"ran_out_of_deliveries\":{}}}",
        all.corrected.len(),
        elapsed,
        args.rate,
        args.connections,
        match args.arrivals {
            Arrivals::Even => "even",
            Arrivals::Poisson => "poisson",
        },
        ms(&all.corrected, 50.0),
        ms(&all.corrected, 90.0),
        ms(&all.corrected, 99.0),
        ms(&all.corrected, 99.9),
        all.corrected.last().copied().unwrap_or(0) as f64 / 1000.0,
        ms(&all.service, 99.0),
        all.ok,
        all.created,
        all.non_2xx,
        all.errors,
        all.late,
        u8::from(all.reused),
    );
    ExitCode::SUCCESS
}

/// Nearest rank, as bench/lib/summarize.py computes pgbench's.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).round() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn connection(
    args: &Args,
    c: usize,
    total: usize,
    barrier: &Barrier,
    start: &std::sync::OnceLock<Instant>,
) -> Result<Tally, String> {
    let mut stream = connect(&args.address);
    barrier.wait();
    barrier.wait();
    let stream = stream
        .as_mut()
        .map_err(|e| format!("connect {}: {e}", args.address))?;
    let start = *start.get().expect("set before the second wait");
    let mut tally = Tally::default();
    let mut request = Vec::with_capacity(8192);
    let mut body = Vec::with_capacity(8192);
    let mut i = c;
    let mut arrivals = SplitMix64(c as u64);
    let mut poisson_due = 0.0;
    while i < total {
        request.clear();
        write_request(args, i, &mut request, &mut tally);
        let due = start
            + Duration::from_secs_f64(match args.arrivals {
                Arrivals::Even => i as f64 / args.rate,
                Arrivals::Poisson => {
                    poisson_due += arrivals.exponential(args.rate / args.connections as f64);
                    poisson_due
                }
            });
        let now = Instant::now();
        if now < due {
            thread::sleep(due - now);
        } else if now - due > Duration::from_millis(1) {
            tally.late += 1;
        }
        let sent = Instant::now();
        let answer = stream
            .get_mut()
            .write_all(&request)
            .and_then(|()| read_answer(stream, &mut body));
        let done = Instant::now();
        match answer {
            Ok((status, close)) => {
                tally.corrected.push((done - due).as_micros() as u64);
                tally.service.push((done - sent).as_micros() as u64);
                match status {
                    201 => {
                        tally.created += 1;
                        tally.ok += 1;
                    }
                    200..=299 => tally.ok += 1,
                    _ => tally.non_2xx += 1,
                }
                if close {
                    *stream = reconnect(&args.address)?;
                }
            }
            Err(_) => {
                tally.errors += 1;
                *stream = reconnect(&args.address)?;
            }
        }
        i += args.connections;
    }
    Ok(tally)
}

fn connect(address: &str) -> std::io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    Ok(BufReader::with_capacity(64 * 1024, stream))
}

fn reconnect(address: &str) -> Result<BufReader<TcpStream>, String> {
    connect(address).map_err(|e| format!("reconnect {address}: {e}"))
}

fn write_request(args: &Args, i: usize, out: &mut Vec<u8>, tally: &mut Tally) {
    let (method, path, body, signature) = match &args.target {
        Target::Get(path) => ("GET", path.as_str(), "", None),
        Target::Deliveries(lines) => {
            if i >= lines.len() {
                tally.reused = true;
            }
            let line = &lines[i % lines.len()];
            let (signature, body) = line.split_once('\t').unwrap_or(("", line));
            ("POST", "/v1/webhooks/idnow", body, Some(signature))
        }
    };
    let _ = write!(
        out,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n",
        args.address
    );
    for header in &args.headers {
        let _ = write!(out, "{header}\r\n");
    }
    if let Some(signature) = signature {
        let _ = write!(
            out,
            "Content-Type: application/json\r\nX-Idnow-Signature: {signature}\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// Reads one answer (Content-Length or chunked): its status, and whether the server closes.
fn read_answer(
    stream: &mut BufReader<TcpStream>,
    body: &mut Vec<u8>,
) -> std::io::Result<(u16, bool)> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if stream.read_line(&mut line)? == 0 {
        return Err(invalid("closed"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("status line"))?;
    let (mut length, mut chunked, mut close) = (0usize, false, false);
    loop {
        line.clear();
        if stream.read_line(&mut line)? == 0 {
            return Err(invalid("closed in the head"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().map_err(|_| invalid("content-length"))?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            stream.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim_end().split(';').next().unwrap_or(""), 16)
                .map_err(|_| invalid("chunk size"))?;
            read_exact(stream, body, size + 2)?; // the chunk and its CRLF
            if size == 0 {
                break;
            }
        }
    } else {
        read_exact(stream, body, length)?;
    }
    Ok((status, close))
}

fn read_exact(
    stream: &mut BufReader<TcpStream>,
    body: &mut Vec<u8>,
    n: usize,
) -> std::io::Result<()> {
    body.resize(n, 0);
    std::io::Read::read_exact(stream, body)
}

fn parse_args(args: Vec<String>) -> Result<Args, String> {
    let mut args = args.into_iter();
    let address = args.next().ok_or("usage: see bench/openloop/src/main.rs")?;
    let (mut rate, mut seconds, mut connections) = (None, None, 16);
    let (mut headers, mut target, mut arrivals) = (Vec::new(), None, Arrivals::Even);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--rate" => rate = Some(value()?.parse::<f64>().map_err(|e| e.to_string())?),
            "--seconds" => seconds = Some(value()?.parse::<f64>().map_err(|e| e.to_string())?),
            "--connections" => connections = value()?.parse().map_err(|_| "--connections")?,
            "--header" => headers.push(value()?),
            "--arrivals" => {
                arrivals = match value()?.as_str() {
                    "even" => Arrivals::Even,
                    "poisson" => Arrivals::Poisson,
                    other => return Err(format!("--arrivals even|poisson, not {other}")),
                }
            }
            "--get" => target = Some(Target::Get(value()?)),
            "--deliveries" => {
                let path = value()?;
                let lines: Vec<String> = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{path}: {e}"))?
                    .lines()
                    .map(str::to_owned)
                    .collect();
                if lines.is_empty() {
                    return Err(format!("{path} holds no delivery"));
                }
                target = Some(Target::Deliveries(lines));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let rate = rate
        .filter(|r| *r > 0.0)
        .ok_or("--rate above 0 is required")?;
    let seconds = seconds
        .filter(|s| *s > 0.0)
        .ok_or("--seconds above 0 is required")?;
    if connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    let target = target.ok_or("--get PATH or --deliveries FILE is required")?;
    Ok(Args {
        address,
        rate,
        seconds,
        connections,
        headers,
        target,
        arrivals,
    })
}
