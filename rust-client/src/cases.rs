//! One function per case of implementations/CONTRACT.md, each returning its [`Checks`].

use std::fmt::Display;
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
use tonic::{Code, Request, Status, Streaming, TimeoutExpired};

use crate::Clients;
use crate::checks::Checks;

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
const LARGE_RESPONSE_SIZE: i32 = 314_159;
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
    }
}

/// A case tonic cannot express; `run_case` reports it unsupported before getting here.
fn cannot_express(case: Case) -> Checks {
    let mut checks = Checks::default();
    checks.fail(format!(
        "{case} cannot be expressed with tonic: {}",
        crate::unsupported_reason(case).unwrap_or("no reason recorded")
    ));
    checks
}

/// The deadline of one RPC: sent to the server as `grpc-timeout`, and enforced
/// here around every wait of the call, since tonic itself only times the wait
/// for the response headers.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    fn start(budget: Duration) -> Self {
        Self {
            at: Instant::now() + budget,
            budget,
        }
    }

    /// A request carrying this deadline.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.budget);
        request
    }

    /// `fut`, or DEADLINE_EXCEEDED once the deadline has passed.
    async fn wait<T>(&self, fut: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
        match tokio::time::timeout_at(self.at, fut).await {
            Ok(result) => result,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "client deadline of {:?} passed",
                self.budget
            ))),
        }
    }

    /// Reads `stream` to its end: the messages, then the final status.
    async fn drain<T>(&self, stream: &mut Streaming<T>) -> (Vec<T>, Result<(), Status>) {
        let mut messages = Vec::new();
        loop {
            match self.wait(stream.message()).await {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => return (messages, Ok(())),
                Err(status) => return (messages, Err(status)),
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

fn large_request() -> SimpleRequest {
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

/// Checks the echoed initial value in `headers` and the echoed binary value in `trailers`.
fn check_echo(
    checks: &mut Checks,
    call: &str,
    headers: &MetadataMap,
    trailers: Option<&MetadataMap>,
) {
    let initial = headers
        .get(ECHO_INITIAL_KEY)
        .map(|v| v.to_str().map_err(|_| v.as_bytes().to_vec()));
    match initial {
        Some(Ok(value)) => {
            checks.equal(format_args!("{call} header {ECHO_INITIAL_KEY}"), value, ECHO_INITIAL_VALUE);
        }
        Some(Err(bytes)) => checks.fail(format!(
            "{call} header {ECHO_INITIAL_KEY} = non-text bytes {bytes:?}, want {ECHO_INITIAL_VALUE:?}"
        )),
        None => checks.fail(format!("{call} header {ECHO_INITIAL_KEY} missing, want {ECHO_INITIAL_VALUE:?}")),
    }
    let trailing = trailers
        .and_then(|t| t.get_bin(ECHO_TRAILING_KEY))
        .map(|v| v.to_bytes());
    let want = hex(&ECHO_TRAILING_VALUE);
    match trailing {
        Some(Ok(bytes)) => {
            checks.equal(
                format_args!("{call} trailer {ECHO_TRAILING_KEY}"),
                hex(&bytes),
                want,
            );
        }
        Some(Err(_)) => checks.fail(format!(
            "{call} trailer {ECHO_TRAILING_KEY} is not valid base64, want {want}"
        )),
        None => checks.fail(format!(
            "{call} trailer {ECHO_TRAILING_KEY} missing, want {want}"
        )),
    }
}

fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}

/// Checks that a stream ended OK with no more messages than it should have had.
fn check_clean_end<T>(
    checks: &mut Checks,
    call: impl Display,
    extra: &[T],
    end: Result<(), Status>,
) {
    checks.equal(
        format_args!("{call} responses after the last expected one"),
        extra.len(),
        0,
    );
    checks.ok(format_args!("{call} final"), end);
}

/// `greeter_unary`: SayHello answers "Hello interop" with index 0.
pub async fn greeter_unary(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut greeter = c.greeter.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let request = d.request(HelloRequest {
        name: GREETER_NAME.to_string(),
    });
    if let Some(reply) = checks.ok("SayHello", d.wait(greeter.say_hello(request)).await) {
        let reply = reply.into_inner();
        checks.equal(
            "SayHello message",
            reply.message,
            format!("{GREETING} {GREETER_NAME}"),
        );
        checks.equal("SayHello index", reply.index, 0);
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
        "SayHelloStream",
        d.wait(greeter.say_hello_stream(request)).await,
    ) else {
        return checks;
    };
    let (replies, end) = d.drain(&mut response.into_inner()).await;
    checks.ok("SayHelloStream final", end);
    checks.equal(
        "SayHelloStream reply count",
        replies.len(),
        GREETER_STREAM_COUNT.unsigned_abs() as usize,
    );
    for (index, reply) in (1..).zip(&replies) {
        let want = format!("{GREETING} {GREETER_NAME} ({index} of {GREETER_STREAM_COUNT})");
        checks.equal(
            format_args!("SayHelloStream reply {index} message"),
            reply.message.as_str(),
            &want,
        );
        checks.equal(
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
        "SayHelloToAll",
        d.wait(greeter.say_hello_to_all(request)).await,
    ) {
        let reply = reply.into_inner();
        checks.equal(
            "SayHelloToAll message",
            reply.message,
            format!("{GREETING} {}", GREETER_NAMES.join(", ")),
        );
        checks.equal(
            "SayHelloToAll index",
            reply.index,
            GREETER_NAMES.len() as i32,
        );
    }
    checks
}

/// `greeter_bidi_streaming`: SayHelloChat answers each name before the next is sent.
pub async fn greeter_bidi_streaming(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut greeter = c.greeter.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let hello = |name: &str| HelloRequest {
        name: name.to_string(),
    };
    let (tx, rx) = mpsc::channel(1);
    // The first name goes out with the call: some servers send their response
    // headers only with the first reply, and the call resolves on the headers.
    if tx.send(hello(GREETER_CHAT_NAMES[0])).await.is_err() {
        checks.fail("SayHelloChat request stream closed before the first name");
        return checks;
    }
    let request = d.request(ReceiverStream::new(rx));
    let Some(response) = checks.ok(
        "SayHelloChat",
        d.wait(greeter.say_hello_chat(request)).await,
    ) else {
        return checks;
    };
    let mut stream = response.into_inner();
    for (index, name) in (1..).zip(GREETER_CHAT_NAMES) {
        if index > 1 && tx.send(hello(name)).await.is_err() {
            checks.fail(format!(
                "SayHelloChat request stream closed before sending {name:?}"
            ));
            return checks;
        }
        match d.wait(stream.message()).await {
            Ok(Some(reply)) => {
                checks.equal(
                    format_args!("SayHelloChat reply {index} message"),
                    reply.message,
                    format!("{GREETING} {name}"),
                );
                checks.equal(
                    format_args!("SayHelloChat reply {index} index"),
                    reply.index,
                    index,
                );
            }
            Ok(None) => {
                checks.fail(format!(
                    "SayHelloChat ended OK after {} replies, want 4",
                    index - 1
                ));
                return checks;
            }
            Err(status) => {
                checks.ok(
                    format_args!("SayHelloChat reply {index}"),
                    Err::<(), _>(status),
                );
                return checks;
            }
        }
    }
    drop(tx);
    let (extra, end) = d.drain(&mut stream).await;
    check_clean_end(&mut checks, "SayHelloChat", &extra, end);
    checks
}

/// `empty_unary`: EmptyCall returns an Empty.
pub async fn empty_unary(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    checks.ok(
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
        "UnaryCall",
        d.wait(test.unary_call(d.request(large_request()))).await,
    ) {
        checks.payload(
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
        "StreamingInputCall",
        d.wait(test.streaming_input_call(request)).await,
    ) {
        checks.equal(
            "StreamingInputCall aggregated_payload_size",
            response.into_inner().aggregated_payload_size,
            AGGREGATED_PAYLOAD_SIZE,
        );
    }
    checks
}

/// Checks the payload sizes of a run of streamed responses against `sizes`.
fn check_sizes(
    checks: &mut Checks,
    call: &str,
    responses: &[StreamingOutputCallResponse],
    sizes: &[i32],
) {
    checks.equal(
        format_args!("{call} response count"),
        responses.len(),
        sizes.len(),
    );
    for (index, (response, size)) in (1..).zip(responses.iter().zip(sizes)) {
        checks.payload(
            format_args!("{call} response {index}"),
            response.payload.as_ref(),
            *size,
        );
    }
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
        "StreamingOutputCall",
        d.wait(test.streaming_output_call(d.request(request))).await,
    ) else {
        return checks;
    };
    let (responses, end) = d.drain(&mut response.into_inner()).await;
    checks.ok("StreamingOutputCall final", end);
    check_sizes(
        &mut checks,
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
    let (tx, rx) = mpsc::channel(1);
    // Sent with the call: the call resolves on response headers, which some
    // servers send only with the first response.
    if tx
        .send(output_request(RESPONSE_SIZES[0], REQUEST_SIZES[0]))
        .await
        .is_err()
    {
        checks.fail("FullDuplexCall request stream closed before the first request");
        return checks;
    }
    let request = d.request(ReceiverStream::new(rx));
    let Some(response) = checks.ok(
        "FullDuplexCall",
        d.wait(test.full_duplex_call(request)).await,
    ) else {
        return checks;
    };
    let mut stream = response.into_inner();
    for (round, (size, payload)) in (1..).zip(RESPONSE_SIZES.into_iter().zip(REQUEST_SIZES)) {
        if round > 1 && tx.send(output_request(size, payload)).await.is_err() {
            checks.fail(format!(
                "FullDuplexCall request stream closed before request {round}"
            ));
            return checks;
        }
        match d.wait(stream.message()).await {
            Ok(Some(response)) => {
                checks.payload(
                    format_args!("FullDuplexCall response {round}"),
                    response.payload.as_ref(),
                    size,
                );
            }
            Ok(None) => {
                checks.fail(format!(
                    "FullDuplexCall ended OK after {} responses, want 4",
                    round - 1
                ));
                return checks;
            }
            Err(status) => {
                checks.ok(
                    format_args!("FullDuplexCall response {round}"),
                    Err::<(), _>(status),
                );
                return checks;
            }
        }
    }
    drop(tx);
    let (extra, end) = d.drain(&mut stream).await;
    check_clean_end(&mut checks, "FullDuplexCall", &extra, end);
    checks
}

/// `empty_stream`: FullDuplexCall half-closed at once ends OK with no responses.
pub async fn empty_stream(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let request = d.request(tokio_stream::empty::<StreamingOutputCallRequest>());
    if let Some(response) = checks.ok(
        "FullDuplexCall",
        d.wait(test.full_duplex_call(request)).await,
    ) {
        let (responses, end) = d.drain(&mut response.into_inner()).await;
        checks.equal("FullDuplexCall response count", responses.len(), 0);
        checks.ok("FullDuplexCall final", end);
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
        .ok(format_args!("{call} (channel ready)"), ready)
        .is_none()
    {
        return;
    }
    let path = PathAndQuery::from_static(UNARY_CALL_PATH);
    let codec = tonic_prost::ProstCodec::<SimpleRequest, SimpleResponse>::default();
    let Some(response) = checks.ok(
        call,
        d.wait(grpc.server_streaming(request, path, codec)).await,
    ) else {
        return;
    };
    let headers = response.metadata().clone();
    let mut stream = response.into_inner();
    let (responses, end) = d.drain(&mut stream).await;
    if checks.ok(format_args!("{call} final"), end).is_some() {
        checks.equal(format_args!("{call} response count"), responses.len(), 1);
        if let Some(response) = responses.first() {
            checks.payload(call, response.payload.as_ref(), LARGE_RESPONSE_SIZE);
        }
    }
    let trailers = d.wait(stream.trailers()).await;
    let trailers = checks
        .ok(format_args!("{call} trailers"), trailers)
        .flatten();
    check_echo(checks, call, &headers, trailers.as_ref());
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
    let Some(response) = checks.ok(call, d.wait(test.full_duplex_call(request)).await) else {
        return;
    };
    let headers = response.metadata().clone();
    let mut stream = response.into_inner();
    let (responses, end) = d.drain(&mut stream).await;
    if checks.ok(format_args!("{call} final"), end).is_some() {
        check_sizes(checks, call, &responses, &[LARGE_RESPONSE_SIZE]);
    }
    let trailers = d.wait(stream.trailers()).await;
    let trailers = checks
        .ok(format_args!("{call} trailers"), trailers)
        .flatten();
    check_echo(checks, call, &headers, trailers.as_ref());
}

/// The final status of a FullDuplexCall that should fail before any response.
async fn full_duplex_status(
    c: &Clients,
    checks: &mut Checks,
    request: StreamingOutputCallRequest,
) -> Result<(), Status> {
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let response = d
        .wait(test.full_duplex_call(d.request(tokio_stream::once(request))))
        .await?;
    let (responses, end) = d.drain(&mut response.into_inner()).await;
    checks.equal("FullDuplexCall response count", responses.len(), 0);
    end
}

/// `status_code_and_message`: UNKNOWN with "test status message", on UnaryCall and FullDuplexCall.
pub async fn status_code_and_message(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let unary = d
        .wait(test.unary_call(d.request(status_request(STATUS_MESSAGE))))
        .await;
    checks.status("UnaryCall", unary, Code::Unknown, Some(STATUS_MESSAGE));

    let request = StreamingOutputCallRequest {
        response_status: Some(EchoStatus {
            code: STATUS_CODE,
            message: STATUS_MESSAGE.to_string(),
        }),
        ..Default::default()
    };
    let duplex = full_duplex_status(c, &mut checks, request).await;
    checks.status(
        "FullDuplexCall",
        duplex,
        Code::Unknown,
        Some(STATUS_MESSAGE),
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
        "UnaryCall",
        unary,
        Code::Unknown,
        Some(SPECIAL_STATUS_MESSAGE),
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
        "UnimplementedService.UnimplementedCall",
        result,
        Code::Unimplemented,
        None,
    );
    checks
}

/// `cancel_after_begin`: a StreamingInputCall cancelled before any message is CANCELLED.
///
/// tonic's `CancellationHandle` resets the HTTP/2 stream (RST_STREAM CANCEL)
/// after the request headers went out; the call then ends with the status
/// tonic derives from that reset.
pub async fn cancel_after_begin(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    // Kept open (never sends, never half-closes) until the end of the case.
    let (_tx, rx) = mpsc::channel::<StreamingInputCallRequest>(1);
    let mut request = d.request(ReceiverStream::new(rx));
    let cancel = request.cancellation_handle();
    let call = test.streaming_input_call(request);
    cancel.cancel();
    let result = d.wait(call).await;
    checks.status("StreamingInputCall", result, Code::Cancelled, None);
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
        checks.fail("FullDuplexCall request stream closed before the first request");
        return checks;
    }
    let mut request = d.request(ReceiverStream::new(rx));
    let cancel = request.cancellation_handle();
    let Some(response) = checks.ok(
        "FullDuplexCall",
        d.wait(test.full_duplex_call(request)).await,
    ) else {
        return checks;
    };
    let mut stream = response.into_inner();
    match d.wait(stream.message()).await {
        Ok(Some(response)) => checks.payload(
            "FullDuplexCall response 1",
            response.payload.as_ref(),
            RESPONSE_SIZES[0],
        ),
        Ok(None) => {
            checks.fail("FullDuplexCall ended OK before its first response, want one response")
        }
        Err(status) => {
            checks.ok("FullDuplexCall response 1", Err::<(), _>(status));
        }
    }
    cancel.cancel();
    let after = d.wait(stream.message()).await;
    checks.status("FullDuplexCall after cancel", after, Code::Cancelled, None);
    drop(tx);
    checks
}

/// tonic reports the expiry of its own `grpc-timeout` timer as CANCELLED
/// "Timeout expired", with a `tonic::TimeoutExpired` in the source chain. That
/// is this client's deadline passing, so it counts as DEADLINE_EXCEEDED; any
/// other status, a CANCELLED for another reason included, is kept as it came.
fn tonic_deadline_as_deadline_exceeded(status: Status) -> Status {
    let mut source = std::error::Error::source(&status);
    while let Some(error) = source {
        if error.is::<TimeoutExpired>() {
            return Status::deadline_exceeded(format!(
                "tonic client deadline passed ({})",
                status.message()
            ));
        }
        source = error.source();
    }
    status
}

/// `timeout_on_sleeping_server`: FullDuplexCall with a 1 ms deadline ends DEADLINE_EXCEEDED.
pub async fn timeout_on_sleeping_server(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(SLEEPING_SERVER_DEADLINE);
    // One request with a payload and no response parameters; the stream stays
    // open (no half-close) so the server has nothing to end the call with.
    let (tx, rx) = mpsc::channel(1);
    let first = StreamingOutputCallRequest {
        payload: zeros(REQUEST_SIZES[0]),
        ..Default::default()
    };
    if tx.send(first).await.is_err() {
        checks.fail("FullDuplexCall request stream closed before the request");
        return checks;
    }
    let outcome = async {
        let response = d
            .wait(test.full_duplex_call(d.request(ReceiverStream::new(rx))))
            .await?;
        let (responses, end) = d.drain(&mut response.into_inner()).await;
        checks.equal("FullDuplexCall response count", responses.len(), 0);
        end
    }
    .await;
    // A server that sees the deadline pass first resets the stream (RST_STREAM
    // CANCEL), which can reach the client before its own timer fires. The gRPC
    // HTTP/2 protocol notes ask clients to re-check their deadline when a call
    // ends CANCELLED and report DEADLINE_EXCEEDED if it has passed.
    let outcome = outcome
        .map_err(tonic_deadline_as_deadline_exceeded)
        .map_err(|status| {
            if status.code() == Code::Cancelled && Instant::now() >= d.at {
                Status::deadline_exceeded(format!(
                    "cancelled after the deadline passed ({})",
                    status.message()
                ))
            } else {
                status
            }
        });
    checks.status("FullDuplexCall", outcome, Code::DeadlineExceeded, None);
    drop(tx);
    checks
}

/// `client_compressed_unary`: uncompressed probe refused, compressed and plain calls served.
///
/// tonic compresses every request of a client built with `send_compressed`,
/// so the per-call choice is two clients on the one channel.
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
        "UnaryCall (expect_compressed, sent uncompressed)",
        probe,
        Code::InvalidArgument,
        None,
    );

    let mut gzip = c.test_gzip.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let compressed = d
        .wait(gzip.unary_call(d.request(compressed_request(true))))
        .await;
    if let Some(response) = checks.ok("UnaryCall (expect_compressed, sent gzip)", compressed) {
        checks.payload(
            "UnaryCall (sent gzip)",
            response.get_ref().payload.as_ref(),
            LARGE_RESPONSE_SIZE,
        );
    }

    let d = Deadline::start(RPC_DEADLINE);
    let uncompressed = d
        .wait(plain.unary_call(d.request(compressed_request(false))))
        .await;
    if let Some(response) = checks.ok(
        "UnaryCall (no expect_compressed, sent uncompressed)",
        uncompressed,
    ) {
        checks.payload(
            "UnaryCall (sent uncompressed)",
            response.get_ref().payload.as_ref(),
            LARGE_RESPONSE_SIZE,
        );
    }
    checks
}

/// `server_compressed_unary`: responses asked compressed and uncompressed both arrive whole.
///
/// Only sizes are checked: tonic decompresses transparently and does not tell
/// the application whether a response message was compressed.
pub async fn server_compressed_unary(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    for compressed in [true, false] {
        let call = format!("UnaryCall (response_compressed={compressed})");
        let d = Deadline::start(RPC_DEADLINE);
        let request = SimpleRequest {
            response_compressed: bool_value(compressed),
            ..large_request()
        };
        if let Some(response) = checks.ok(&call, d.wait(test.unary_call(d.request(request))).await)
        {
            checks.payload(
                &call,
                response.get_ref().payload.as_ref(),
                LARGE_RESPONSE_SIZE,
            );
        }
    }
    checks
}

/// `server_compressed_streaming`: two responses, asked compressed then not, arrive in order.
///
/// Only sizes are checked, for the reason given at [`server_compressed_unary`].
pub async fn server_compressed_streaming(c: &Clients) -> Checks {
    let mut checks = Checks::default();
    let mut test = c.test.clone();
    let d = Deadline::start(RPC_DEADLINE);
    let request = StreamingOutputCallRequest {
        response_parameters: SERVER_COMPRESSED_STREAM_SIZES
            .iter()
            .zip([true, false])
            .map(|(size, compressed)| ResponseParameters {
                size: *size,
                compressed: bool_value(compressed),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let Some(response) = checks.ok(
        "StreamingOutputCall",
        d.wait(test.streaming_output_call(d.request(request))).await,
    ) else {
        return checks;
    };
    let (responses, end) = d.drain(&mut response.into_inner()).await;
    checks.ok("StreamingOutputCall final", end);
    check_sizes(
        &mut checks,
        "StreamingOutputCall",
        &responses,
        &SERVER_COMPRESSED_STREAM_SIZES,
    );
    checks
}
