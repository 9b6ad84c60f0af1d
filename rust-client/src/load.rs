//! Load mode (`--load`, see "Load mode" in implementations/CONTRACT.md): a
//! number of workers keep calls in flight over a number of channels for a
//! warm-up and then a measured window, and the client reports one line with
//! the count, the errors, the rate and the latency percentiles of the window.
//!
//! Every latency of the window is kept (a worker owns its own vector, so the
//! hot path takes no lock), which makes the percentiles exact.

use std::time::Duration;

use grpc_interop::pb::grpc_testing::test_service_client::TestServiceClient;
use grpc_interop::pb::grpc_testing::{
    Payload, ResponseParameters, SimpleRequest, StreamingOutputCallRequest,
};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::cases::nearest_rank;
use crate::{ClientError, ClientOptions};
pub use grpc_interop::load::Load;

/// The deadline of each unary call.
pub const UNARY_DEADLINE: Duration = Duration::from_secs(10);
/// How long the client waits for what is in flight once the window closed.
pub const WIND_DOWN: Duration = Duration::from_secs(10);
/// The largest payload a load may ask for.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// What to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    pub load: Load,
    /// Workers.
    pub concurrency: usize,
    /// Channels, each its own connection.
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Request and response payload size.
    pub payload_bytes: usize,
}

impl LoadOptions {
    /// The contract's bad usage, as one line.
    pub fn validate(&self) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err("--load_concurrency must be at least 1".into());
        }
        if self.connections == 0 {
            return Err("--load_connections must be at least 1".into());
        }
        if self.connections > self.concurrency {
            return Err(format!(
                "--load_connections ({}) must not exceed --load_concurrency ({}): a channel without a worker measures nothing",
                self.connections, self.concurrency
            ));
        }
        if self.duration.is_zero() {
            return Err("--load_duration_ms must be at least 1".into());
        }
        if self.payload_bytes > MAX_PAYLOAD {
            return Err(format!(
                "--load_payload_bytes must be at most {MAX_PAYLOAD} (1 MiB)"
            ));
        }
        Ok(())
    }
}

/// Latency percentiles of a window, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// The one line a load ends with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    pub event: &'static str,
    pub load: Load,
    pub concurrency: usize,
    pub connections: usize,
    pub warmup_ms: u64,
    pub duration_ms: u64,
    pub payload_bytes: usize,
    pub count: u64,
    pub errors: u64,
    pub elapsed_ms: f64,
    pub qps: f64,
    pub latency_us: Option<Latency>,
    pub first_error: String,
}

impl LoadReport {
    /// The JSON line.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).expect("a load report serializes")
    }
}

/// Percentiles of `latencies` (nanoseconds, any order); `None` when empty.
pub fn latency_of(latencies: &mut [u64]) -> Option<Latency> {
    if latencies.is_empty() {
        return None;
    }
    latencies.sort_unstable();
    let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
    Some(Latency {
        p50: us(nearest_rank(latencies, 50.0)?),
        p90: us(nearest_rank(latencies, 90.0)?),
        p99: us(nearest_rank(latencies, 99.0)?),
        max: us(*latencies.last()?),
    })
}

/// The window of a load: what ends inside it counts.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn holds(&self, at: Instant) -> bool {
        at >= self.start && at < self.end
    }
}

/// What one worker saw in the window.
#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<(Instant, String)>,
}

impl Tally {
    fn success(&mut self, window: &Window, started: Instant, ended: Instant) {
        if window.holds(ended) {
            self.latencies
                .push(u64::try_from((ended - started).as_nanos()).unwrap_or(u64::MAX));
        }
    }

    fn error(&mut self, window: &Window, ended: Instant, what: impl FnOnce() -> String) {
        if window.holds(ended) {
            self.errors += 1;
            if self.first_error.is_none() {
                self.first_error = Some((ended, what()));
            }
        }
    }
}

fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

fn payload_len(payload: Option<&Payload>) -> usize {
    payload.map_or(0, |p| p.body.len())
}

/// One worker of the unary load.
async fn unary_worker(
    mut client: TestServiceClient<Channel>,
    request: SimpleRequest,
    want: usize,
    window: Window,
) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < window.end {
        let mut call = tonic::Request::new(request.clone());
        call.set_timeout(UNARY_DEADLINE);
        let started = Instant::now();
        let result = client.unary_call(call).await;
        let ended = Instant::now();
        match result {
            Ok(response) => {
                let got = payload_len(response.get_ref().payload.as_ref());
                if got == want {
                    tally.success(&window, started, ended);
                } else {
                    tally.error(&window, ended, || {
                        format!("UnaryCall response payload of {got} bytes, want {want}")
                    });
                }
            }
            Err(status) => tally.error(&window, ended, || status_text(&status)),
        }
    }
    tally
}

/// One worker of the ping-pong load: one stream at a time, a new one after
/// a stream fails.
async fn ping_pong_worker(
    mut client: TestServiceClient<Channel>,
    request: StreamingOutputCallRequest,
    want: usize,
    window: Window,
    stream_deadline: Duration,
) -> Tally {
    let mut tally = Tally::default();
    'streams: while Instant::now() < window.end {
        let (tx, rx) = mpsc::channel(1);
        // The first request goes in before the call, so a server that sends
        // its headers only with its first response still answers.
        let started = Instant::now();
        if tx.send(request.clone()).await.is_err() {
            break;
        }
        let mut call = tonic::Request::new(ReceiverStream::new(rx));
        call.set_timeout(stream_deadline);
        let mut responses = match client.full_duplex_call(call).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                tally.error(&window, Instant::now(), || status_text(&status));
                continue 'streams;
            }
        };
        let mut started = started;
        loop {
            match responses.message().await {
                Ok(Some(response)) => {
                    let ended = Instant::now();
                    let got = payload_len(response.payload.as_ref());
                    if got == want {
                        tally.success(&window, started, ended);
                    } else {
                        tally.error(&window, ended, || {
                            format!("FullDuplexCall response payload of {got} bytes, want {want}")
                        });
                    }
                }
                Ok(None) => {
                    tally.error(&window, Instant::now(), || {
                        "FullDuplexCall stream ended OK before the response to a request".into()
                    });
                    continue 'streams;
                }
                Err(status) => {
                    tally.error(&window, Instant::now(), || status_text(&status));
                    continue 'streams;
                }
            }
            if Instant::now() >= window.end {
                // Half-close and read the stream to its status.
                drop(tx);
                while let Ok(Some(_)) = responses.message().await {}
                break 'streams;
            }
            started = Instant::now();
            if tx.send(request.clone()).await.is_err() {
                tally.error(&window, Instant::now(), || {
                    "FullDuplexCall request stream closed by the library".into()
                });
                continue 'streams;
            }
        }
    }
    tally
}

/// Plays `options` against the server of `client`: makes the channels,
/// calls `ready`, runs the load and reports it.
pub async fn run_load(
    client: &ClientOptions,
    options: &LoadOptions,
    ready: impl FnOnce(),
) -> Result<LoadReport, ClientError> {
    let channels = (0..options.connections)
        .map(|_| client.channel())
        .collect::<Result<Vec<_>, _>>()?;
    ready();
    let payload = Payload {
        r#type: 0,
        body: vec![0; options.payload_bytes],
    };
    let size = i32::try_from(options.payload_bytes).expect("payload at most 1 MiB");
    let t0 = Instant::now();
    let window = Window {
        start: t0 + options.warmup,
        end: t0 + options.warmup + options.duration,
    };
    let stream_deadline = options.warmup + options.duration + Duration::from_secs(10);
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..options.concurrency {
        let stub = TestServiceClient::new(channels[i % channels.len()].clone());
        match options.load {
            Load::Unary => {
                let request = SimpleRequest {
                    response_size: size,
                    payload: Some(payload.clone()),
                    ..Default::default()
                };
                workers.spawn(unary_worker(stub, request, options.payload_bytes, window));
            }
            Load::PingPong => {
                let request = StreamingOutputCallRequest {
                    response_parameters: vec![ResponseParameters {
                        size,
                        ..Default::default()
                    }],
                    payload: Some(payload.clone()),
                    ..Default::default()
                };
                workers.spawn(ping_pong_worker(
                    stub,
                    request,
                    options.payload_bytes,
                    window,
                    stream_deadline,
                ));
            }
        }
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error: Option<(Instant, String)> = None;
    let give_up = Instant::now().max(window.end) + WIND_DOWN;
    loop {
        match tokio::time::timeout_at(give_up, workers.join_next()).await {
            Ok(Some(Ok(mut tally))) => {
                latencies.append(&mut tally.latencies);
                errors += tally.errors;
                if let Some((at, text)) = tally.first_error
                    && first_error.as_ref().is_none_or(|(first, _)| at < *first)
                {
                    first_error = Some((at, text));
                }
            }
            Ok(Some(Err(join))) => {
                errors += 1;
                first_error.get_or_insert((Instant::now(), format!("a worker died: {join}")));
            }
            Ok(None) => break,
            Err(_) => {
                // Calls still in flight after the wind-down: their results
                // end outside the window, so nothing of them is lost.
                tracing::warn!(
                    "{} workers still busy {WIND_DOWN:?} after the window; stopping them",
                    workers.len()
                );
                workers.abort_all();
                break;
            }
        }
    }
    let elapsed = window.end - window.start;
    let count = latencies.len() as u64;
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    Ok(LoadReport {
        event: "load",
        load: options.load,
        concurrency: options.concurrency,
        connections: options.connections,
        warmup_ms: u64::try_from(options.warmup.as_millis()).unwrap_or(u64::MAX),
        duration_ms: u64::try_from(options.duration.as_millis()).unwrap_or(u64::MAX),
        payload_bytes: options.payload_bytes,
        count,
        errors,
        elapsed_ms: (elapsed_ms * 10.0).round() / 10.0,
        qps: ((count as f64 / elapsed.as_secs_f64()) * 10.0).round() / 10.0,
        latency_us: latency_of(&mut latencies),
        first_error: first_error.map(|(_, text)| text).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_takes_the_ceiling_rank() {
        let sorted: Vec<u64> = (1..=10).collect();
        assert_eq!(nearest_rank(&sorted, 50.0), Some(5));
        assert_eq!(nearest_rank(&sorted, 90.0), Some(9));
        assert_eq!(nearest_rank(&sorted, 99.0), Some(10));
        assert_eq!(nearest_rank(&sorted, 0.0), Some(1));
        assert_eq!(nearest_rank(&[7u64], 99.0), Some(7));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&hundred, 99.0), Some(99));
    }

    #[test]
    fn latency_is_in_microseconds_with_one_decimal() {
        let mut ns = vec![3_000_000, 1_000_049, 2_000_051];
        let latency = latency_of(&mut ns).unwrap();
        assert_eq!(latency.p50, 2000.1);
        assert_eq!(latency.max, 3000.0);
        assert_eq!(latency_of(&mut []), None);
    }

    #[test]
    fn bad_usage_is_refused() {
        let good = LoadOptions {
            load: Load::Unary,
            concurrency: 4,
            connections: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(10),
            payload_bytes: 100,
        };
        assert_eq!(good.validate(), Ok(()));
        for (bad, words) in [
            (
                LoadOptions {
                    concurrency: 0,
                    ..good
                },
                "concurrency",
            ),
            (
                LoadOptions {
                    connections: 0,
                    ..good
                },
                "connections",
            ),
            (
                LoadOptions {
                    connections: 5,
                    ..good
                },
                "must not exceed",
            ),
            (
                LoadOptions {
                    duration: Duration::ZERO,
                    ..good
                },
                "duration",
            ),
            (
                LoadOptions {
                    payload_bytes: MAX_PAYLOAD + 1,
                    ..good
                },
                "payload",
            ),
        ] {
            let error = bad.validate().unwrap_err();
            assert!(error.contains(words), "{error}");
        }
        assert!(
            Load::parse("stream")
                .unwrap_err()
                .contains("unary and ping_pong")
        );
        assert_eq!(Load::parse("ping_pong"), Ok(Load::PingPong));
    }
}
