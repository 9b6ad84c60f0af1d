//! One function per case of implementations/CONTRACT.md, each returning its [`Checks`].

use std::future::Future;
use std::time::Duration;

use grpc_interop::cases::Case;
use grpc_interop::pb::grpc_testing::{
    BoolValue, EchoStatus, Empty, Payload, PayloadType, ResponseParameters, SimpleRequest,
    SimpleResponse, StreamingInputCallRequest, StreamingOutputCallRequest,
    StreamingOutputCallResponse,
};
use grpc_interop::pb::helloworld::{HelloRequest, HelloStreamRequest};
use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Status, Streaming};

use grpc_interop::pb::grpc_testing::test_service_client::TestServiceClient;

use crate::Clients;
use crate::checks::{CallError, Checks, DEADLINE_BACKSTOP};
use crate::wire::{CallFlags, WireChannel};

/// Deadline of every RPC unless a case says otherwise.
pub const RPC_DEADLINE: Duration = Duration::from_secs(10);
/// Deadline of `timeout_on_sleeping_server`.
pub const SLEEPING_SERVER_DEADLINE: Duration = Duration::from_millis(1);

/// First word of every Greeter reply (the server's default `--greeting`).
const GREETING: &str = "Hello";
const GREETER_NAME: &str = "interop";
const GREETER_STREAM_COUNT: i32 = 5;
const GREETER_NAMES: [&str; 3] = ["alice", "bob", "carol"];
const GREETER_CHAT_NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];

const LARGE_REQUEST_SIZE: usize = 271_828;
pub(crate) const LARGE_RESPONSE_SIZE: i32 = 314_159;
const REQUEST_SIZES: [usize; 4] = [27_182, 8, 1_828, 45_904];
const AGGREGATED_PAYLOAD_SIZE: i32 = 74_922;
const RESPONSE_SIZES: [i32; 4] = [31_415, 9, 2_653, 58_979];
const SERVER_COMPRESSED_STREAM_SIZES: [i32; 2] = [31_415, 92_653];

const ECHO_INITIAL_KEY: &str = "x-grpc-test-echo-initial";
const ECHO_INITIAL_VALUE: &str = "test_initial_metadata_value";
const ECHO_TRAILING_KEY: &str = "x-grpc-test-echo-trailing-bin";
const ECHO_TRAILING_VALUE: [u8; 3] = [0xab, 0xab, 0xab];

const STATUS_CODE: i32 = 2;
const STATUS_MESSAGE: &str = "test status message";
const SPECIAL_STATUS_MESSAGE: &str =
    "\t\ntest with whitespace\r\nand Unicode BMP \u{263A} and non-BMP \u{1F608}\t\n";

const UNARY_CALL_PATH: &str = "/grpc.testing.TestService/UnaryCall";

/// Runs one case.
pub async fn run(case: Case, c: &Clients) -> Checks {
    match case {
        Case::GreeterUnary => greeter_unary(c).await,
        Case::GreeterServerStreaming => greeter_server_streaming(c).await,
        Case::GreeterClientStreaming => greeter_client_streaming(c).await,
        Case::GreeterBidiStreaming => greeter_bidi_streaming(c).await,
        Case::EmptyUnary => empty_unary(c).await,
        Case::LargeUnary => large_unary(c).await,
        Case::ClientStreaming => client_streaming(c).await,
        Case::ServerStreaming => server_streaming(c).await,
        Case::PingPong => ping_pong(c).await,
        Case::EmptyStream => empty_stream(c).await,
        Case::CustomMetadata => custom_metadata(c).await,
        Case::StatusCodeAndMessage => status_code_and_message(c).await,
        Case::SpecialStatusMessage => special_status_message(c).await,
        Case::UnimplementedMethod => unimplemented_method(c).await,
        Case::UnimplementedService => unimplemented_service(c).await,
        Case::CancelAfterBegin => cancel_after_begin(c).await,
        Case::CancelAfterFirstResponse => cancel_after_first_response(c).await,
        Case::TimeoutOnSleepingServer => timeout_on_sleeping_server(c).await,
        Case::ClientCompressedUnary => client_compressed_unary(c).await,
        Case::ServerCompressedUnary => server_compressed_unary(c).await,
        Case::ClientCompressedStreaming => cannot_express(case),
        Case::ServerCompressedStreaming => server_compressed_streaming(c).await,
        Case::RpcSoak => soak(c, Channels::One).await,
        Case::ChannelSoak => soak(c, Channels::OnePerIteration).await,
        _ => crate::negative::run(case, c).await,
    }
}

/// A case tonic cannot express; `run_case` reports it unsupported before getting here.
fn cannot_express(case: Case) -> Checks {
    let mut checks = Checks::default();
    let first = case.checks().first().copied().unwrap_or("status");
    checks.fail(
        first,
        format!(
            "{case} cannot be expressed with tonic: {}",
            crate::unsupported_reason(case).unwrap_or("no reason recorded")
        ),
    );
    checks
}

/// The deadline of one RPC, sent to the server as `grpc-timeout` and left to
/// tonic to enforce. The client makes no status of its own: if tonic has not
/// ended a wait of the call [`DEADLINE_BACKSTOP`] after the deadline, the wait
/// gives up with [`CallError::Overrun`], which fails the check it was for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    pub(crate) fn start(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
            budget,
        }
    }

    /// A request carrying this deadline.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.budget);
        request
    }

    /// What `fut` gave, as tonic gave it, or an overrun.
    pub(crate) async fn wait<T>(
        &self,
        fut: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout_at(self.at + DEADLINE_BACKSTOP, fut).await {
            Ok(result) => result.map_err(CallError::Status),
            Err(_) => Err(CallError::Overrun {
                deadline: self.budget,
            }),
        }
    }

    /// Reads `stream` to its end: the messages, then the final status.
    async fn drain<T>(&self, stream: &mut Streaming<T>) -> (Vec<T>, Result<(), CallError>) {
        let mut messages = Vec::new();
        loop {
            match self.wait(stream.message()).await {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => return (messages, Ok(())),
                Err(error) => return (messages, Err(error)),
            }
        }
    }
}

fn zeros(size: usize) -> Option<Payload> {
    Some(Payload {
        r#type: PayloadType::Compressable.into(),
        body: vec![0; size],
    })
}

fn bool_value(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

pub(crate) fn large_request() -> SimpleRequest {
    SimpleRequest {
        response_size: LARGE_RESPONSE_SIZE,
        payload: zeros(LARGE_REQUEST_SIZE),
        ..Default::default()
    }
}

fn output_request(response_size: i32, payload_size: usize) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters {
            size: response_size,
            ..Default::default()
        }],
        payload: zeros(payload_size),
        ..Default::default()
    }
}

fn status_request(message: &str) -> SimpleRequest {
    SimpleRequest {
        response_status: Some(EchoStatus {
            code: STATUS_CODE,
            message: message.to_string(),
        }),
        ..Default::default()
    }
}

fn add_echo_metadata(metadata: &mut MetadataMap) {
    metadata.insert(
        ECHO_INITIAL_KEY,
        MetadataValue::from_static(ECHO_INITIAL_VALUE),
    );
    metadata.insert_bin(
        ECHO_TRAILING_KEY,
        MetadataValue::from_bytes(&ECHO_TRAILING_VALUE),
    );
}

/// Checks `<prefix>echo_initial` (the value in the response headers) and
/// `<prefix>echo_trailing` (the binary value in the trailers).
fn check_echo(
    checks: &mut Checks,
    prefix: &str,
    call: &str,
    headers: &MetadataMap,
    trailers: Option<&MetadataMap>,
) {
    let name = format!("{prefix}echo_initial");
    match headers
        .get(ECHO_INITIAL_KEY)
        .map(|v| v.to_str().map_err(|_| v.as_bytes().to_vec()))
    {
        Some(Ok(value)) => {
            checks.equal(
                &name,
                format_args!("{call} header {ECHO_INITIAL_KEY}"),
                value,
                ECHO_INITIAL_VALUE,
            );
        }
        Some(Err(bytes)) => checks.fail(
            &name,
            format!("{call} header {ECHO_INITIAL_KEY} = non-text bytes {bytes:?}, want {ECHO_INITIAL_VALUE:?}"),
        ),
        None => checks.fail(
            &name,
            format!("{call} header {ECHO_INITIAL_KEY} missing, want {ECHO_INITIAL_VALUE:?}"),
        ),
    }
    let name = format!("{prefix}echo_trailing");
    let want = hex(&ECHO_TRAILING_VALUE);
    match trailers
        .and_then(|t| t.get_bin(ECHO_TRAILING_KEY))
        .map(|v| v.to_bytes())
    {
        Some(Ok(bytes)) => {
            checks.equal(
                &name,
                format_args!("{call} trailer {ECHO_TRAILING_KEY}"),
                hex(&bytes),
                want,
            );
        }
        Some(Err(_)) => checks.fail(
            &name,
            format!("{call} trailer {ECHO_TRAILING_KEY} is not valid base64, want {want}"),
        ),
        None => checks.fail(
            &name,
            format!("{call} trailer {ECHO_TRAILING_KEY} missing, want {want}"),
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}

/// Checks `<prefix>response_count` and the payload of every response of a
/// stream against `sizes`.
fn check_sizes(
    checks: &mut Checks,
    prefix: &str,
    call: &str,
    responses: &[StreamingOutputCallResponse],
    sizes: &[i32],
) {
    checks.equal(
        &format!("{prefix}response_count"),
        format_args!("{call} response count"),
        responses.len(),
        sizes.len(),
    );
    for (index, (response, size)) in (1..).zip(responses.iter().zip(sizes)) {
        checks.payload(
            prefix,
            format_args!("{call} response {index}"),
            response.payload.as_ref(),
            *size,
        );
    }
}

/// A full-duplex exchange in lock step: the first request went out with the
/// call; request k+1 (from `rest`) goes out only after reply k came, and
/// `check` looks at each reply. Then half-close: no reply may follow, and the
/// stream must end OK. Records `count` (how many replies) and `status`;
/// returns early, with the failure recorded, when the stream ends or fails
/// before its last reply.
#[allow(clippy::too_many_arguments)]
async fn lock_step<Req, Reply>(
    checks: &mut Checks,
    d: &Deadline,
    call: &str,
    count: &str,
    tx: mpsc::Sender<Req>,
    stream: &mut Streaming<Reply>,
    rest: Vec<Req>,
    mut check: impl FnMut(&mut Checks, usize, Reply),
) {
    let want = rest.len() + 1;
    let mut rest = rest.into_iter();
    for k in 1..=want {
        if k > 1
            && let Some(request) = rest.next()
            && tx.send(request).await.is_err()
        {
            checks.fail(
                "status",
                format!("{call} request stream closed before request {k}"),
            );
            return;
        }
        match d.wait(stream.message()).await {
            Ok(Some(reply)) => check(checks, k, reply),
            Ok(None) => {
                checks.fail(
                    count,
                    format!("{call} ended OK after {} replies, want {want}", k - 1),
                );
                return;
            }
            Err(error) => {
                checks.ok(
                    "status",
                    format_args!("{call} reply {k}"),
                    Err::<(), _>(error),
                );
                return;
            }
        }
    }
    drop(tx);
    let (extra, end) = d.drain(stream).await;
    checks.equal(
        count,
        format_args!("{call} replies after half-close"),
        extra.len(),
        0,
    );
    checks.ok("status", format_args!("{call} final"), end);
}

/// A token of 8 lowercase hex digits, drawn for each `greeter_bidi_streaming`
/// call: a server can only greet a name it has received.
fn chat_token() -> String {
    // Falls back to the clock where the OS cannot give random bytes.
    let n = getrandom::u32().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    });
    format!("{n:08x}")
}

/// `greeter_unary`: SayHello answers "Hello interop" with index 0.
pub async fn greeter_unary(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut greeter = c.greeter.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let request = d.request(HelloRequest {
        name: GREETER_NAME.to_string(),
    });
    if let Some(reply) = checks.ok(
        "status",
        "SayHello",
        d.wait(greeter.say_hello(request)).await,
    ) {
        let reply = reply.into_inner();
        checks.equal(
            "message",
            "SayHello message",
            reply.message,
            format!("{GREETING} {GREETER_NAME}"),
        );
        checks.equal("index", "SayHello index", reply.index, 0);
    }
    checks
}

/// `greeter_server_streaming`: SayHelloStream sends exactly 5 numbered replies in order.
pub async fn greeter_server_streaming(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut greeter = c.greeter.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let request = d.request(HelloStreamRequest {
        name: GREETER_NAME.to_string(),
        count: GREETER_STREAM_COUNT,
    });
    let Some(response) = checks.ok(
        "status",
        "SayHelloStream",
        d.wait(greeter.say_hello_stream(request)).await,
    ) else {
        return checks;
    };
    let (replies, end) = d.drain(&mut response.into_inner()).await;
    checks.ok("status", "SayHelloStream final", end);
    checks.equal(
        "reply_count",
        "SayHelloStream reply count",
        replies.len(),
        GREETER_STREAM_COUNT.unsigned_abs() as usize,
    );
    for (index, reply) in (1..).zip(&replies) {
        let want = format!("{GREETING} {GREETER_NAME} ({index} of {GREETER_STREAM_COUNT})");
        checks.equal(
            "message",
            format_args!("SayHelloStream reply {index} message"),
            reply.message.as_str(),
            &want,
        );
        checks.equal(
            "index",
            format_args!("SayHelloStream reply {index} index"),
            reply.index,
            index,
        );
    }
    checks
}

/// `greeter_client_streaming`: SayHelloToAll greets alice, bob and carol in one reply.
pub async fn greeter_client_streaming(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut greeter = c.greeter.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let names = GREETER_NAMES.map(|name| HelloRequest {
        name: name.to_string(),
    });
    let request = d.request(tokio_stream::iter(names));
    if let Some(reply) = checks.ok(
        "status",
        "SayHelloToAll",
        d.wait(greeter.say_hello_to_all(request)).await,
    ) {
        let reply = reply.into_inner();
        checks.equal(
            "message",
            "SayHelloToAll message",
            reply.message,
            format!("{GREETING} {}", GREETER_NAMES.join(", ")),
        );
        checks.equal(
            "index",
            "SayHelloToAll index",
            reply.index,
            GREETER_NAMES.len() as i32,
        );
    }
    checks
}

/// `greeter_bidi_streaming`: SayHelloChat answers each name, token included,
/// before the next is sent.
pub async fn greeter_bidi_streaming(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut greeter = c.greeter.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let token = chat_token();
    let names: Vec<String> = GREETER_CHAT_NAMES
        .iter()
        .map(|n| format!("{n} {token}"))
        .collect();
    let mut requests: Vec<HelloRequest> = names
        .iter()
        .map(|name| HelloRequest { name: name.clone() })
        .collect();
    let (tx, rx) = mpsc::channel(1);
    // The first name goes out with the call: some servers send their response
    // headers only with the first reply, and the call resolves on the headers.
    if tx.send(requests.remove(0)).await.is_err() {
        checks.fail(
            "status",
            "SayHelloChat request stream closed before the first name",
        );
        return checks;
    }
    let Some(response) = checks.ok(
        "status",
        "SayHelloChat",
        d.wait(greeter.say_hello_chat(d.request(ReceiverStream::new(rx))))
            .await,
    ) else {
        return checks;
    };
    let mut stream = response.into_inner();
    lock_step(
        &mut checks,
        &d,
        "SayHelloChat",
        "reply_count",
        tx,
        &mut stream,
        requests,
        |checks, k, reply| {
            checks.equal(
                "message",
                format_args!("SayHelloChat reply {k} message"),
                reply.message,
                format!("{GREETING} {}", names[k - 1]),
            );
            checks.equal(
                "index",
                format_args!("SayHelloChat reply {k} index"),
                reply.index,
                k as i32,
            );
        },
    )
    .await;
    checks
}

/// `empty_unary`: EmptyCall returns an Empty.
pub async fn empty_unary(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    checks.ok(
        "status",
        "EmptyCall",
        d.wait(test.empty_call(d.request(Empty {}))).await,
    );
    checks
}

/// `large_unary`: UnaryCall with 271828 bytes in returns 314159 bytes.
pub async fn large_unary(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    if let Some(response) = checks.ok(
        "status",
        "UnaryCall",
        d.wait(test.unary_call(d.request(large_request()))).await,
    ) {
        checks.payload(
            "",
            "UnaryCall",
            response.get_ref().payload.as_ref(),
            LARGE_RESPONSE_SIZE,
        );
    }
    checks
}

/// `client_streaming`: StreamingInputCall sums four payloads to 74922.
pub async fn client_streaming(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let requests = REQUEST_SIZES.map(|size| StreamingInputCallRequest {
        payload: zeros(size),
        ..Default::default()
    });
    let request = d.request(tokio_stream::iter(requests));
    if let Some(response) = checks.ok(
        "status",
        "StreamingInputCall",
        d.wait(test.streaming_input_call(request)).await,
    ) {
        checks.equal(
            "aggregated_size",
            "StreamingInputCall aggregated_payload_size",
            response.into_inner().aggregated_payload_size,
            AGGREGATED_PAYLOAD_SIZE,
        );
    }
    checks
}

/// `server_streaming`: StreamingOutputCall sends four responses of the asked sizes, in order.
pub async fn server_streaming(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let request = StreamingOutputCallRequest {
        response_parameters: RESPONSE_SIZES
            .iter()
            .map(|size| ResponseParameters {
                size: *size,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let Some(response) = checks.ok(
        "status",
        "StreamingOutputCall",
        d.wait(test.streaming_output_call(d.request(request))).await,
    ) else {
        return checks;
    };
    let (responses, end) = d.drain(&mut response.into_inner()).await;
    checks.ok("status", "StreamingOutputCall final", end);
    check_sizes(
        &mut checks,
        "",
        "StreamingOutputCall",
        &responses,
        &RESPONSE_SIZES,
    );
    checks
}

/// `ping_pong`: FullDuplexCall, four request/response rounds in lock step.
pub async fn ping_pong(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let mut requests: Vec<StreamingOutputCallRequest> = RESPONSE_SIZES
        .into_iter()
        .zip(REQUEST_SIZES)
        .map(|(size, payload)| output_request(size, payload))
        .collect();
    let (tx, rx) = mpsc::channel(1);
    // Sent with the call: the call resolves on response headers, which some
    // servers send only with the first response.
    if tx.send(requests.remove(0)).await.is_err() {
        checks.fail(
            "status",
            "FullDuplexCall request stream closed before the first request",
        );
        return checks;
    }
    let Some(response) = checks.ok(
        "status",
        "FullDuplexCall",
        d.wait(test.full_duplex_call(d.request(ReceiverStream::new(rx))))
            .await,
    ) else {
        return checks;
    };
    let mut stream = response.into_inner();
    lock_step(
        &mut checks,
        &d,
        "FullDuplexCall",
        "response_count",
        tx,
        &mut stream,
        requests,
        |checks, k, response| {
            checks.payload(
                "",
                format_args!("FullDuplexCall response {k}"),
                response.payload.as_ref(),
                RESPONSE_SIZES[k - 1],
            );
        },
    )
    .await;
    checks
}

/// `empty_stream`: FullDuplexCall half-closed at once ends OK with no responses.
pub async fn empty_stream(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let request = d.request(tokio_stream::empty::<StreamingOutputCallRequest>());
    if let Some(response) = checks.ok(
        "status",
        "FullDuplexCall",
        d.wait(test.full_duplex_call(request)).await,
    ) {
        let (responses, end) = d.drain(&mut response.into_inner()).await;
        checks.equal(
            "response_count",
            "FullDuplexCall response count",
            responses.len(),
            0,
        );
        checks.ok("status", "FullDuplexCall final", end);
    }
    checks
}

/// `custom_metadata`: the initial value comes back in the headers and the binary
/// value in the trailers, on UnaryCall and on FullDuplexCall.
pub async fn custom_metadata(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    custom_metadata_unary(c, &mut checks).await;
    custom_metadata_full_duplex(c, &mut checks).await;
    checks
}

/// The UnaryCall half of `custom_metadata`.
///
/// tonic's generated unary method merges the trailers into the response
/// metadata, which would hide where each value came from. The same UnaryCall
/// (one request message, one response message on the wire) is therefore made
/// through tonic's generic `Grpc::server_streaming`, which keeps the headers
/// (`Response::metadata`) and the trailers (`Streaming::trailers`) apart.
async fn custom_metadata_unary(c: &Clients, checks: &mut Checks) {
    let call = "UnaryCall";
    let d = Deadline::start(RPC_DEADLINE);
    let mut request = d.request(large_request());
    add_echo_metadata(request.metadata_mut());
    let mut grpc = tonic::client::Grpc::new(c.channel.clone());
    let ready = d
        .wait(async {
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(e.to_string()))
        })
        .await;
    if checks
        .ok(
            "unary.status",
            format_args!("{call} (channel ready)"),
            ready,
        )
        .is_none()
    {
        return;
    }
    let path = PathAndQuery::from_static(UNARY_CALL_PATH);
    let codec = tonic_prost::ProstCodec::<SimpleRequest, SimpleResponse>::default();
    let Some(response) = checks.ok(
        "unary.status",
        call,
        d.wait(grpc.server_streaming(request, path, codec)).await,
    ) else {
        return;
    };
    let headers = response.metadata().clone();
    let mut stream = response.into_inner();
    let (responses, end) = d.drain(&mut stream).await;
    if checks
        .ok("unary.status", format_args!("{call} final"), end)
        .is_some()
    {
        // A unary call has exactly one response; anything else is no OK call.
        checks.equal(
            "unary.status",
            format_args!("{call} response count"),
            responses.len(),
            1,
        );
        if let Some(response) = responses.first() {
            checks.payload(
                "unary.",
                call,
                response.payload.as_ref(),
                LARGE_RESPONSE_SIZE,
            );
        }
    }
    let trailers = d.wait(stream.trailers()).await;
    let trailers = checks
        .ok("unary.status", format_args!("{call} trailers"), trailers)
        .flatten();
    check_echo(checks, "unary.", call, &headers, trailers.as_ref());
}

/// The FullDuplexCall half of `custom_metadata`.
async fn custom_metadata_full_duplex(c: &Clients, checks: &mut Checks) {
    let call = "FullDuplexCall";
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let mut request = d.request(tokio_stream::once(output_request(
        LARGE_RESPONSE_SIZE,
        LARGE_REQUEST_SIZE,
    )));
    add_echo_metadata(request.metadata_mut());
    let Some(response) = checks.ok(
        "duplex.status",
        call,
        d.wait(test.full_duplex_call(request)).await,
    ) else {
        return;
    };
    let headers = response.metadata().clone();
    let mut stream = response.into_inner();
    let (responses, end) = d.drain(&mut stream).await;
    if checks
        .ok("duplex.status", format_args!("{call} final"), end)
        .is_some()
    {
        check_sizes(checks, "duplex.", call, &responses, &[LARGE_RESPONSE_SIZE]);
    }
    let trailers = d.wait(stream.trailers()).await;
    let trailers = checks
        .ok("duplex.status", format_args!("{call} trailers"), trailers)
        .flatten();
    check_echo(checks, "duplex.", call, &headers, trailers.as_ref());
}

/// The final status of a FullDuplexCall of one request that should fail.
async fn full_duplex_status(
    c: &Clients,
    request: StreamingOutputCallRequest,
) -> Result<(), CallError> {
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let response = d
        .wait(test.full_duplex_call(d.request(tokio_stream::once(request))))
        .await?;
    d.drain(&mut response.into_inner()).await.1
}

/// `status_code_and_message`: UNKNOWN with "test status message", on UnaryCall and FullDuplexCall.
pub async fn status_code_and_message(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let unary = d
        .wait(test.unary_call(d.request(status_request(STATUS_MESSAGE))))
        .await;
    checks.status(
        "unary.status_code",
        "UnaryCall",
        unary,
        Code::Unknown,
        Some(("unary.status_message", STATUS_MESSAGE)),
    );
    let request = StreamingOutputCallRequest {
        response_status: Some(EchoStatus {
            code: STATUS_CODE,
            message: STATUS_MESSAGE.to_string(),
        }),
        ..Default::default()
    };
    checks.status(
        "duplex.status_code",
        "FullDuplexCall",
        full_duplex_status(c, request).await,
        Code::Unknown,
        Some(("duplex.status_message", STATUS_MESSAGE)),
    );
    checks
}

/// `special_status_message`: the status message with whitespace and Unicode comes back byte for byte.
pub async fn special_status_message(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let unary = d
        .wait(test.unary_call(d.request(status_request(SPECIAL_STATUS_MESSAGE))))
        .await;
    checks.status(
        "status_code",
        "UnaryCall",
        unary,
        Code::Unknown,
        Some(("status_message", SPECIAL_STATUS_MESSAGE)),
    );
    checks
}

/// `unimplemented_method`: TestService.UnimplementedCall is UNIMPLEMENTED.
pub async fn unimplemented_method(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let result = d.wait(test.unimplemented_call(d.request(Empty {}))).await;
    checks.status(
        "status_code",
        "TestService.UnimplementedCall",
        result,
        Code::Unimplemented,
        None,
    );
    checks
}

/// `unimplemented_service`: UnimplementedService.UnimplementedCall is UNIMPLEMENTED.
pub async fn unimplemented_service(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut client = c.unimplemented.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let result = d.wait(client.unimplemented_call(d.request(Empty {}))).await;
    checks.status(
        "status_code",
        "UnimplementedService.UnimplementedCall",
        result,
        Code::Unimplemented,
        None,
    );
    checks
}

/// `cancel_after_begin`: a StreamingInputCall cancelled before any message is CANCELLED.
///
/// The call is started first: its request goes to the transport, which sends
/// the headers, so the server sees the call begin. Then tonic's
/// `CancellationHandle` resets the stream (RST_STREAM CANCEL), and the call
/// ends with the status tonic derives from that.
pub async fn cancel_after_begin(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    // Kept open (never sends, never half-closes) until the end of the case.
    let (_tx, rx) = mpsc::channel::<StreamingInputCallRequest>(1);
    let mut request = d.request(ReceiverStream::new(rx));
    let flags = CallFlags::record(&mut request);
    let cancel = request.cancellation_handle();
    let mut call = tokio::spawn(async move { test.streaming_input_call(request).await });
    let joined = |r: Result<_, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(Status::internal(format!("the call task failed: {e}"))))
    };
    // The call ends before it is dispatched only on a channel error; it says why.
    let ended_early = d
        .wait(async {
            tokio::select! {
                () = flags.dispatched.notified() => Ok(None),
                r = &mut call => Ok(Some(joined(r))),
            }
        })
        .await;
    cancel.cancel();
    let result = match ended_early {
        Ok(Some(result)) => result.map_err(CallError::Status),
        Ok(None) => d.wait(async { joined(call.await) }).await,
        Err(overrun) => Err(overrun),
    };
    checks.status(
        "status_code",
        "StreamingInputCall",
        result,
        Code::Cancelled,
        None,
    );
    checks
}

/// `cancel_after_first_response`: a FullDuplexCall cancelled after one response is CANCELLED.
pub async fn cancel_after_first_response(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let (tx, rx) = mpsc::channel(1);
    if tx
        .send(output_request(RESPONSE_SIZES[0], REQUEST_SIZES[0]))
        .await
        .is_err()
    {
        checks.fail(
            "status",
            "FullDuplexCall request stream closed before the first request",
        );
        return checks;
    }
    let mut request = d.request(ReceiverStream::new(rx));
    let cancel = request.cancellation_handle();
    let Some(response) = checks.ok(
        "status",
        "FullDuplexCall",
        d.wait(test.full_duplex_call(request)).await,
    ) else {
        return checks;
    };
    let mut stream = response.into_inner();
    match d.wait(stream.message()).await {
        Ok(Some(response)) => checks.payload(
            "",
            "FullDuplexCall response 1",
            response.payload.as_ref(),
            RESPONSE_SIZES[0],
        ),
        Ok(None) => checks.fail(
            "status",
            "FullDuplexCall ended OK before its first response, want one response",
        ),
        Err(error) => {
            checks.ok("status", "FullDuplexCall response 1", Err::<(), _>(error));
        }
    }
    cancel.cancel();
    let after = d.wait(stream.message()).await;
    checks.status(
        "status_code",
        "FullDuplexCall after cancel",
        after,
        Code::Cancelled,
        None,
    );
    drop(tx);
    checks
}

/// `timeout_on_sleeping_server`: FullDuplexCall with a 1 ms deadline ends
/// DEADLINE_EXCEEDED. What tonic returns is reported as it is.
pub async fn timeout_on_sleeping_server(c: &Clients) -> Checks {
    timeout_on_sleeping_server_with(c, SLEEPING_SERVER_DEADLINE).await
}

/// `timeout_on_sleeping_server` with another deadline than the case's 1 ms
/// (for tests that need the response headers to come before it).
pub async fn timeout_on_sleeping_server_with(c: &Clients, deadline: Duration) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(deadline);
    // One request with a payload and no response parameters; the stream stays
    // open (no half-close) so the server has nothing to end the call with.
    let (tx, rx) = mpsc::channel(1);
    let first = StreamingOutputCallRequest {
        payload: zeros(REQUEST_SIZES[0]),
        ..Default::default()
    };
    if tx.send(first).await.is_err() {
        checks.fail(
            "status_code",
            "FullDuplexCall request stream closed before the request",
        );
        return checks;
    }
    let outcome = async {
        let response = d
            .wait(test.full_duplex_call(d.request(ReceiverStream::new(rx))))
            .await?;
        d.drain(&mut response.into_inner()).await.1
    }
    .await;
    checks.status(
        "status_code",
        "FullDuplexCall",
        outcome,
        Code::DeadlineExceeded,
        None,
    );
    drop(tx);
    checks
}

/// `client_compressed_unary`: uncompressed probe refused, compressed and plain calls served.
///
/// tonic compresses every request of a client built with `send_compressed`,
/// so the per-call choice is two clients on the one channel. The flags of the
/// request messages, as they left, are read from the wire ([`CallFlags`]).
pub async fn client_compressed_unary(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let compressed_request = |expect: bool| SimpleRequest {
        expect_compressed: bool_value(expect),
        ..large_request()
    };

    let mut plain = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let probe = d
        .wait(plain.unary_call(d.request(compressed_request(true))))
        .await;
    checks.status(
        "probe.status_code",
        "UnaryCall (expect_compressed, sent uncompressed)",
        probe,
        Code::InvalidArgument,
        None,
    );

    let mut gzip = c.test_gzip.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let mut request = d.request(compressed_request(true));
    let flags = CallFlags::record(&mut request);
    let call = "UnaryCall (expect_compressed, sent gzip)";
    if let Some(response) = checks.ok(
        "compressed.status",
        call,
        d.wait(gzip.unary_call(request)).await,
    ) {
        checks.payload(
            "compressed.",
            call,
            response.get_ref().payload.as_ref(),
            LARGE_RESPONSE_SIZE,
        );
    }
    // A check of this client: the probe means nothing unless this request
    // really left compressed.
    checks.equal(
        "compressed.sent_compressed",
        format_args!("{call}: request messages sent compressed"),
        flags.sent.all(),
        vec![true],
    );

    let d = Deadline::start(RPC_DEADLINE);
    let call = "UnaryCall (expect_compressed=false, sent uncompressed)";
    if let Some(response) = checks.ok(
        "uncompressed.status",
        call,
        d.wait(plain.unary_call(d.request(compressed_request(false))))
            .await,
    ) {
        checks.payload(
            "uncompressed.",
            call,
            response.get_ref().payload.as_ref(),
            LARGE_RESPONSE_SIZE,
        );
    }
    checks
}

/// `server_compressed_unary`: responses asked compressed and uncompressed
/// arrive whole, each with the compressed flag as asked (read from the wire).
pub async fn server_compressed_unary(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    for (prefix, compressed) in [("compressed.", true), ("uncompressed.", false)] {
        let call = format!("UnaryCall (response_compressed={compressed})");
        let d = Deadline::start(RPC_DEADLINE);
        let mut request = d.request(SimpleRequest {
            response_compressed: bool_value(compressed),
            ..large_request()
        });
        let flags = CallFlags::record(&mut request);
        if let Some(response) = checks.ok(
            &format!("{prefix}status"),
            &call,
            d.wait(test.unary_call(request)).await,
        ) {
            checks.payload(
                prefix,
                &call,
                response.get_ref().payload.as_ref(),
                LARGE_RESPONSE_SIZE,
            );
            checks.equal(
                &format!("{prefix}response_compressed"),
                format_args!("{call}: response messages arrived compressed"),
                flags.received.all(),
                vec![compressed],
            );
        }
    }
    checks
}

/// `server_compressed_streaming`: two responses, asked compressed then not,
/// arrive in order with the compressed flags as asked (read from the wire).
pub async fn server_compressed_streaming(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let asked = [true, false];
    let mut request = d.request(StreamingOutputCallRequest {
        response_parameters: SERVER_COMPRESSED_STREAM_SIZES
            .iter()
            .zip(asked)
            .map(|(size, compressed)| ResponseParameters {
                size: *size,
                compressed: bool_value(compressed),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    let flags = CallFlags::record(&mut request);
    let call = "StreamingOutputCall";
    let Some(response) = checks.ok(
        "status",
        call,
        d.wait(test.streaming_output_call(request)).await,
    ) else {
        return checks;
    };
    let (responses, end) = d.drain(&mut response.into_inner()).await;
    checks.ok("status", format_args!("{call} final"), end);
    check_sizes(
        &mut checks,
        "",
        call,
        &responses,
        &SERVER_COMPRESSED_STREAM_SIZES,
    );
    checks.equal(
        "response_compressed",
        format_args!("{call}: response messages arrived compressed"),
        flags.received.all(),
        asked.to_vec(),
    );
    checks
}

/// Which channel the iterations of a soak case use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// `rpc_soak`: the client's channel.
    One,
    /// `channel_soak`: a new channel for every iteration, closed after it.
    OnePerIteration,
}

/// One soak iteration: how long it took, and why it failed, if it did.
#[derive(Debug)]
struct Iteration {
    latency: Duration,
    failure: Option<String>,
}

/// `rpc_soak` and `channel_soak`: `large_unary` over and over, by the
/// settings of the official flags; at most `max_failures` may fail.
pub async fn soak(c: &Clients, channels: Channels) -> Checks {
    let mut checks = Checks::default();
    let name = match channels {
        Channels::One => "rpc_soak",
        Channels::OnePerIteration => "channel_soak",
    };
    if channels == Channels::OnePerIteration && c.options.is_none() {
        checks.fail(
            "completed",
            "channel_soak: these clients were made without a way to make channels",
        );
        return checks;
    }
    let s = c.soak;
    let workers = s.num_threads.max(1);
    let per_worker = s.iterations / workers;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let c = c.clone();
        tasks.spawn(async move {
            soak_worker(&c, channels, worker * per_worker, per_worker, started).await
        });
    }
    let mut iterations = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(done) => iterations.extend(done),
            Err(e) => checks.fail(
                "completed",
                format!("{name}: a worker ended abnormally: {e}"),
            ),
        }
    }
    let run = iterations.len();
    checks.equal(
        "completed",
        format_args!("{name} iterations run within {:?}", s.overall_timeout),
        run,
        s.iterations as usize,
    );
    let failures: Vec<&str> = iterations
        .iter()
        .filter_map(|i| i.failure.as_deref())
        .collect();
    checks.record(
        "failures",
        failures.len() <= s.max_failures as usize,
        || {
            let shown: Vec<&str> = failures.iter().take(5).copied().collect();
            format!(
                "{name}: {} of {run} iterations failed, want at most {}: {}{}",
                failures.len(),
                s.max_failures,
                shown.join("; "),
                if failures.len() > shown.len() {
                    "; ..."
                } else {
                    ""
                }
            )
        },
    );
    checks.metric("iterations", run as f64);
    checks.metric("failures", failures.len() as f64);
    let mut latencies: Vec<f64> = iterations
        .iter()
        .filter(|i| i.failure.is_none())
        .map(|i| i.latency.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    for (key, p) in [
        ("latency_ms_p50", 50.0),
        ("latency_ms_p90", 90.0),
        ("latency_ms_p99", 99.0),
        ("latency_ms_max", 100.0),
    ] {
        if let Some(value) = nearest_rank(&latencies, p) {
            checks.metric(key, (value * 1000.0).round() / 1000.0);
        }
    }
    checks
}

/// The nearest-rank `p`-th percentile of sorted `values`: the value at rank
/// ⌈p/100 × n⌉ (1-based); `None` when there are none.
pub fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// One worker's share of a soak: `count` iterations numbered from `first`,
/// none started after the overall timeout.
async fn soak_worker(
    c: &Clients,
    channels: Channels,
    first: u32,
    count: u32,
    started: Instant,
) -> Vec<Iteration> {
    let s = c.soak;
    let mut done = Vec::new();
    for index in first..first + count {
        if started.elapsed() >= s.overall_timeout {
            break;
        }
        let iteration_started = Instant::now();
        let mut test = match channels {
            Channels::One => c.test.clone(),
            Channels::OnePerIteration => match c.options.as_ref().map(|o| o.channel()) {
                Some(Ok(channel)) => TestServiceClient::new(WireChannel::new(channel)),
                Some(Err(e)) => {
                    done.push(Iteration {
                        latency: Duration::ZERO,
                        failure: Some(format!("iteration {index}: no channel: {e}")),
                    });
                    continue;
                }
                None => break,
            },
        };
        let d = Deadline::start(s.per_iteration_max_acceptable_latency);
        let answer = d.wait(test.unary_call(d.request(large_request()))).await;
        let latency = iteration_started.elapsed();
        let failure = match answer {
            Err(error) => Some(format!("iteration {index}: UnaryCall status = {error}")),
            Ok(response) => {
                let mut payload = Checks::default();
                payload.payload(
                    "",
                    "UnaryCall",
                    response.get_ref().payload.as_ref(),
                    LARGE_RESPONSE_SIZE,
                );
                if !payload.passed() {
                    Some(format!("iteration {index}: {}", payload.message()))
                } else if latency > s.per_iteration_max_acceptable_latency {
                    Some(format!(
                        "iteration {index}: took {:.1} ms, want at most {} ms",
                        latency.as_secs_f64() * 1000.0,
                        s.per_iteration_max_acceptable_latency.as_millis()
                    ))
                } else {
                    None
                }
            }
        };
        done.push(Iteration { latency, failure });
        // The channel of channel_soak closes here, with its client.
        drop(test);
        tokio::time::sleep_until(iteration_started + s.min_time_between_rpcs).await;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&values, 50.0), Some(5.0));
        assert_eq!(nearest_rank(&values, 90.0), Some(9.0));
        assert_eq!(nearest_rank(&values, 99.0), Some(10.0));
        assert_eq!(nearest_rank(&values, 100.0), Some(10.0));
        assert_eq!(nearest_rank(&[3.0], 50.0), Some(3.0));
        assert_eq!(nearest_rank::<f64>(&[], 50.0), None);
    }
}
