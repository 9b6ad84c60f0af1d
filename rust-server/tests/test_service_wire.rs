//! TestService checked at the HTTP/2 message level, in-process: what goes in
//! the response headers and trailers, request compression detection per
//! message (with frames split across body chunks), and which response messages
//! tonic compresses.

use std::convert::Infallible;
use std::io::{Read, Write};

use bytes::Bytes;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use grpc_interop::pb::grpc_testing::{
    BoolValue, EchoStatus, Payload, ResponseParameters, SimpleRequest, SimpleResponse,
    StreamingInputCallRequest, StreamingInputCallResponse, StreamingOutputCallRequest,
    StreamingOutputCallResponse,
};
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use prost::Message;
use tower_service::Service;

const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
const ECHO_TRAILING: &str = "x-grpc-test-echo-trailing-bin";
/// base64 of 0xababab, as it travels in a `-bin` header.
const ECHO_TRAILING_BASE64: &str = "q6ur";

/// One request message on the wire: compressed (gzip) or not.
struct WireMessage {
    compressed: bool,
    bytes: Vec<u8>,
}

fn plain<M: Message>(message: &M) -> WireMessage {
    WireMessage {
        compressed: false,
        bytes: message.encode_to_vec(),
    }
}

fn gzip<M: Message>(message: &M) -> WireMessage {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(&message.encode_to_vec())
        .expect("gzip into memory");
    WireMessage {
        compressed: true,
        bytes: encoder.finish().expect("gzip into memory"),
    }
}

fn frame_all(messages: &[WireMessage]) -> Vec<u8> {
    let mut wire = Vec::new();
    for m in messages {
        wire.push(u8::from(m.compressed));
        wire.extend_from_slice(
            &u32::try_from(m.bytes.len())
                .expect("small message")
                .to_be_bytes(),
        );
        wire.extend_from_slice(&m.bytes);
    }
    wire
}

/// What came back: headers, (compressed flag, decompressed bytes) per message, trailers.
struct Reply {
    headers: HeaderMap,
    messages: Vec<(bool, Vec<u8>)>,
    trailers: HeaderMap,
}

impl Reply {
    fn status(&self) -> Option<&str> {
        self.trailers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
    }

    fn decode<M: Message + Default>(&self) -> Vec<M> {
        self.messages
            .iter()
            .map(|(_, bytes)| M::decode(bytes.as_slice()).expect("response decodes"))
            .collect()
    }
}

/// Sends `messages` to `method`, the body cut into chunks of `chunk` bytes.
async fn call(
    method: &str,
    headers: &[(&str, &str)],
    messages: &[WireMessage],
    chunk: usize,
) -> Reply {
    let wire = frame_all(messages);
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = wire
        .chunks(chunk)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let body = tonic::body::Body::new(StreamBody::new(tokio_stream::iter(chunks)));
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://test/grpc.testing.TestService/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if messages.iter().any(|m| m.compressed) {
        request = request.header("grpc-encoding", "gzip");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body).expect("valid request");

    let mut service = rust_server::test_service::service();
    let response = match service.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("response body");
    let trailers = collected.trailers().cloned();
    let data = collected.to_bytes();
    // A trailers-only response carries the status in the headers.
    let trailers = trailers.unwrap_or_else(|| parts.headers.clone());
    let mut messages = Vec::new();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let compressed = rest[0] == 1;
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let bytes = &rest[5..5 + len];
        let bytes = if compressed {
            let mut out = Vec::new();
            GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .expect("gunzip response");
            out
        } else {
            bytes.to_vec()
        };
        messages.push((compressed, bytes));
        rest = &rest[5 + len..];
    }
    Reply {
        headers: parts.headers,
        messages,
        trailers,
    }
}

fn zeros(len: usize) -> Option<Payload> {
    Some(Payload {
        r#type: 0,
        body: vec![0; len],
    })
}

fn yes(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

const ECHO_HEADERS: [(&str, &str); 2] = [
    (ECHO_INITIAL, "test_initial_metadata_value"),
    (ECHO_TRAILING, ECHO_TRAILING_BASE64),
];

#[tokio::test]
async fn unary_success_echoes_initial_in_headers_and_binary_in_trailers() {
    let request = SimpleRequest {
        response_size: 314_159,
        payload: zeros(271_828),
        ..Default::default()
    };
    let reply = call("UnaryCall", &ECHO_HEADERS, &[plain(&request)], 16_384).await;
    assert_eq!(
        reply.headers.get(ECHO_INITIAL),
        Some(&HeaderValue::from_static("test_initial_metadata_value"))
    );
    assert!(
        reply.headers.get(ECHO_TRAILING).is_none(),
        "binary value belongs in the trailers only"
    );
    assert_eq!(reply.status(), Some("0"));
    assert_eq!(
        reply.trailers.get(ECHO_TRAILING),
        Some(&HeaderValue::from_static(ECHO_TRAILING_BASE64))
    );
    let responses: Vec<SimpleResponse> = reply.decode();
    assert_eq!(responses.len(), 1);
    assert_eq!(
        responses[0].payload.as_ref().map(|p| p.body.len()),
        Some(314_159)
    );
}

#[tokio::test]
async fn unary_error_with_echo_is_headers_then_trailers() {
    let request = SimpleRequest {
        response_status: Some(EchoStatus {
            code: 2,
            message: "test status message".into(),
        }),
        ..Default::default()
    };
    let reply = call("UnaryCall", &ECHO_HEADERS, &[plain(&request)], 1 << 20).await;
    assert!(
        reply.headers.get("grpc-status").is_none(),
        "not trailers-only once metadata is echoed"
    );
    assert_eq!(
        reply.headers.get(ECHO_INITIAL),
        Some(&HeaderValue::from_static("test_initial_metadata_value"))
    );
    assert_eq!(reply.status(), Some("2"));
    assert_eq!(
        reply.trailers.get("grpc-message"),
        Some(&HeaderValue::from_static("test%20status%20message"))
    );
    assert_eq!(
        reply.trailers.get(ECHO_TRAILING),
        Some(&HeaderValue::from_static(ECHO_TRAILING_BASE64))
    );
    assert!(reply.messages.is_empty());
}

#[tokio::test]
async fn full_duplex_echoes_on_success_and_on_error() {
    let ok = StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters {
            size: 314_159,
            ..Default::default()
        }],
        payload: zeros(271_828),
        ..Default::default()
    };
    let reply = call("FullDuplexCall", &ECHO_HEADERS, &[plain(&ok)], 7_000).await;
    assert_eq!(
        reply.headers.get(ECHO_INITIAL),
        Some(&HeaderValue::from_static("test_initial_metadata_value"))
    );
    assert_eq!(reply.status(), Some("0"));
    assert_eq!(
        reply.trailers.get(ECHO_TRAILING),
        Some(&HeaderValue::from_static(ECHO_TRAILING_BASE64))
    );
    assert_eq!(reply.decode::<StreamingOutputCallResponse>().len(), 1);

    let failing = StreamingOutputCallRequest {
        response_status: Some(EchoStatus {
            code: 2,
            message: "test status message".into(),
        }),
        ..Default::default()
    };
    let reply = call("FullDuplexCall", &ECHO_HEADERS, &[plain(&failing)], 7_000).await;
    assert_eq!(
        reply.headers.get(ECHO_INITIAL),
        Some(&HeaderValue::from_static("test_initial_metadata_value"))
    );
    assert_eq!(reply.status(), Some("2"));
    assert_eq!(
        reply.trailers.get(ECHO_TRAILING),
        Some(&HeaderValue::from_static(ECHO_TRAILING_BASE64))
    );
}

#[tokio::test]
async fn unary_expect_compressed_is_enforced_per_message() {
    let request = SimpleRequest {
        response_size: 314_159,
        payload: zeros(271_828),
        expect_compressed: yes(true),
        ..Default::default()
    };
    let refused = call("UnaryCall", &[], &[plain(&request)], 1 << 20).await;
    assert_eq!(
        refused.status(),
        Some("3"),
        "uncompressed probe must be INVALID_ARGUMENT"
    );

    let served = call("UnaryCall", &[], &[gzip(&request)], 3).await;
    assert_eq!(served.status(), Some("0"));
    let responses: Vec<SimpleResponse> = served.decode();
    assert_eq!(
        responses[0].payload.as_ref().map(|p| p.body.len()),
        Some(314_159)
    );
}

#[tokio::test]
async fn streaming_input_flags_each_message_even_when_frames_are_split() {
    let first = StreamingInputCallRequest {
        payload: zeros(27_182),
        expect_compressed: yes(true),
    };
    let second = StreamingInputCallRequest {
        payload: zeros(45_904),
        expect_compressed: yes(false),
    };
    // Chunk sizes that split prefixes and payloads at odd places, including one byte at a time.
    for chunk in [1, 3, 4, 5, 6, 7, 1_000, 1 << 20] {
        let reply = call(
            "StreamingInputCall",
            &[],
            &[gzip(&first), plain(&second)],
            chunk,
        )
        .await;
        assert_eq!(reply.status(), Some("0"), "chunk {chunk}");
        let responses: Vec<StreamingInputCallResponse> = reply.decode();
        assert_eq!(
            responses[0].aggregated_payload_size, 73_086,
            "chunk {chunk}"
        );
    }
    let probe = call("StreamingInputCall", &[], &[plain(&first)], 5).await;
    assert_eq!(
        probe.status(),
        Some("3"),
        "uncompressed message with expect_compressed must be INVALID_ARGUMENT"
    );
    // Compressed first, then an uncompressed one that expects compression.
    let second_wrong = StreamingInputCallRequest {
        payload: zeros(8),
        expect_compressed: yes(true),
    };
    let reply = call(
        "StreamingInputCall",
        &[],
        &[gzip(&first), plain(&second_wrong)],
        6,
    )
    .await;
    assert_eq!(reply.status(), Some("3"));
}

#[tokio::test]
async fn unary_response_compression_follows_the_request() {
    let accept = [("grpc-accept-encoding", "gzip")];
    for compressed in [true, false] {
        let request = SimpleRequest {
            response_size: 314_159,
            response_compressed: yes(compressed),
            ..Default::default()
        };
        let reply = call("UnaryCall", &accept, &[plain(&request)], 1 << 20).await;
        assert_eq!(reply.status(), Some("0"));
        assert_eq!(reply.messages.len(), 1);
        assert_eq!(
            reply.messages[0].0, compressed,
            "response_compressed={compressed}"
        );
    }
}

/// tonic 0.14.9 compresses every message of a response stream to a client
/// that accepts gzip, or none, whatever `ResponseParameters.compressed` says;
/// the server chooses none (the spec's default), so a stream's messages
/// leave uncompressed even when the client accepts gzip and one asks for
/// compression. `server_compressed_streaming` is unsupported for that reason.
#[tokio::test]
async fn streaming_responses_go_uncompressed() {
    let request = StreamingOutputCallRequest {
        response_parameters: vec![
            ResponseParameters {
                size: 31_415,
                compressed: yes(true),
                ..Default::default()
            },
            ResponseParameters {
                size: 92_653,
                compressed: yes(false),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    for method in ["StreamingOutputCall", "FullDuplexCall"] {
        let reply = call(
            method,
            &[("grpc-accept-encoding", "gzip")],
            &[plain(&request)],
            1 << 20,
        )
        .await;
        assert_eq!(reply.status(), Some("0"), "{method}");
        let flags: Vec<bool> = reply.messages.iter().map(|(c, _)| *c).collect();
        assert_eq!(flags, vec![false, false], "{method}");
        let sizes: Vec<usize> = reply
            .decode::<StreamingOutputCallResponse>()
            .iter()
            .map(|r| r.payload.as_ref().map_or(0, |p| p.body.len()))
            .collect();
        assert_eq!(sizes, vec![31_415, 92_653], "{method}");
    }
}

/// A unary reply is compressed only when the request asks for it: not when
/// `response_compressed` is absent, though the client accepts gzip.
#[tokio::test]
async fn unary_reply_is_uncompressed_unless_asked() {
    let request = SimpleRequest {
        response_size: 1000,
        ..Default::default()
    };
    let reply = call(
        "UnaryCall",
        &[("grpc-accept-encoding", "gzip")],
        &[plain(&request)],
        1 << 20,
    )
    .await;
    assert_eq!(reply.status(), Some("0"));
    assert_eq!(reply.messages.len(), 1);
    assert!(!reply.messages[0].0, "compressed without being asked");
}
