//! `grpc.testing.TestService`, as the interop contract describes it.

use std::time::Duration;

use grpc_interop::pb::grpc_testing::test_service_server::{TestService, TestServiceServer};
use grpc_interop::pb::grpc_testing::{
    BoolValue, EchoStatus, Empty, Payload, PayloadType, ResponseParameters, SimpleRequest,
    SimpleResponse, StreamingInputCallRequest, StreamingInputCallResponse,
    StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::wire::{EchoMetadata, RequestFrameFlags};

/// How many responses a streaming handler may queue ahead of the client.
const RESPONSE_QUEUE: usize = 16;

/// The served form: the generated server with gzip both ways, wrapped by
/// [`EchoMetadata`] for metadata echo and request compression flags.
pub type TestServiceService = EchoMetadata<TestServiceServer<TestServiceImpl>>;

/// Builds the service as the server registers it.
pub fn service() -> TestServiceService {
    EchoMetadata::new(
        TestServiceServer::new(TestServiceImpl)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip),
    )
}

/// The handlers. Stateless: everything a call needs comes with its request.
#[derive(Debug, Default, Clone, Copy)]
pub struct TestServiceImpl;

type ResponseSender = mpsc::Sender<Result<StreamingOutputCallResponse, Status>>;
type ResponseStream = ReceiverStream<Result<StreamingOutputCallResponse, Status>>;

/// A payload of `size` zero bytes, type COMPRESSABLE.
fn zero_payload(size: i32) -> Result<Payload, Status> {
    let len = usize::try_from(size)
        .map_err(|_| Status::invalid_argument(format!("payload size {size} is negative")))?;
    Ok(Payload {
        r#type: PayloadType::Compressable.into(),
        body: vec![0; len],
    })
}

/// `Err` with the requested status when `response_status` carries a non-zero code.
fn requested_status(status: Option<&EchoStatus>) -> Result<(), Status> {
    match status {
        Some(s) if s.code != 0 => Err(Status::new(Code::from(s.code), s.message.clone())),
        _ => Ok(()),
    }
}

/// Enforces `expect_compressed` for request message `index` of a call.
fn check_expect_compressed(
    expect: Option<&BoolValue>,
    flags: Option<&RequestFrameFlags>,
    index: usize,
) -> Result<(), Status> {
    if !expect.is_some_and(|e| e.value) {
        return Ok(());
    }
    match flags.and_then(|f| f.compressed(index)) {
        Some(true) => Ok(()),
        Some(false) => Err(Status::invalid_argument(format!(
            "request message {index} has expect_compressed=true but arrived uncompressed"
        ))),
        None => Err(Status::internal(format!(
            "compression flag of request message {index} was not recorded"
        ))),
    }
}

fn unary_response(request: Request<SimpleRequest>) -> Result<Response<SimpleResponse>, Status> {
    let flags = request.extensions().get::<RequestFrameFlags>().cloned();
    let message = request.into_inner();
    check_expect_compressed(message.expect_compressed.as_ref(), flags.as_ref(), 0)?;
    requested_status(message.response_status.as_ref())?;
    let mut response = Response::new(SimpleResponse {
        payload: Some(zero_payload(message.response_size)?),
        ..Default::default()
    });
    // tonic compresses a unary reply whenever the client accepts gzip; this turns
    // that off unless the request asks for compression (the spec's default is
    // an uncompressed reply).
    if !message.response_compressed.is_some_and(|c| c.value) {
        response.disable_compression();
    }
    Ok(response)
}

/// Sends one response per entry of `parameters`, each after its interval.
/// Returns false once the client is gone.
async fn send_responses(tx: &ResponseSender, parameters: &[ResponseParameters]) -> bool {
    for parameter in parameters {
        if parameter.interval_us > 0 {
            tokio::time::sleep(Duration::from_micros(
                parameter.interval_us.unsigned_abs().into(),
            ))
            .await;
        }
        // `parameter.compressed` cannot be honoured per message: tonic compresses
        // every message of a response stream or none of them.
        let response = zero_payload(parameter.size).map(|payload| StreamingOutputCallResponse {
            payload: Some(payload),
        });
        let failed = response.is_err();
        if tx.send(response).await.is_err() || failed {
            return false;
        }
    }
    true
}

/// Answers one streaming request: its status if it asks for one, else its responses.
async fn answer(tx: &ResponseSender, request: &StreamingOutputCallRequest) -> bool {
    if let Err(status) = requested_status(request.response_status.as_ref()) {
        let _ = tx.send(Err(status)).await;
        return false;
    }
    send_responses(tx, &request.response_parameters).await
}

#[tonic::async_trait]
impl TestService for TestServiceImpl {
    async fn empty_call(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        unary_response(request)
    }

    async fn cacheable_unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        unary_response(request)
    }

    type StreamingOutputCallStream = ResponseStream;

    async fn streaming_output_call(
        &self,
        request: Request<StreamingOutputCallRequest>,
    ) -> Result<Response<Self::StreamingOutputCallStream>, Status> {
        let message = request.into_inner();
        let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
        tokio::spawn(async move {
            answer(&tx, &message).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn streaming_input_call(
        &self,
        request: Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        let flags = request.extensions().get::<RequestFrameFlags>().cloned();
        let mut stream = request.into_inner();
        let mut total: usize = 0;
        let mut index = 0;
        while let Some(message) = stream.message().await? {
            check_expect_compressed(message.expect_compressed.as_ref(), flags.as_ref(), index)?;
            total += message.payload.map_or(0, |p| p.body.len());
            index += 1;
        }
        let aggregated_payload_size = i32::try_from(total).map_err(|_| {
            Status::invalid_argument(format!(
                "aggregated payload size {total} does not fit an int32"
            ))
        })?;
        Ok(Response::new(StreamingInputCallResponse {
            aggregated_payload_size,
        }))
    }

    type FullDuplexCallStream = ResponseStream;

    async fn full_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Self::FullDuplexCallStream>, Status> {
        let mut stream = request.into_inner();
        let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
        tokio::spawn(async move {
            loop {
                match stream.message().await {
                    Ok(Some(message)) => {
                        if !answer(&tx, &message).await {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type HalfDuplexCallStream = ResponseStream;

    async fn half_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Self::HalfDuplexCallStream>, Status> {
        let mut stream = request.into_inner();
        let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
        tokio::spawn(async move {
            let mut requests = Vec::new();
            loop {
                match stream.message().await {
                    Ok(Some(message)) => requests.push(message),
                    Ok(None) => break,
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
            }
            for message in &requests {
                if !answer(&tx, message).await {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn unimplemented_call(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented(
            "grpc.testing.TestService/UnimplementedCall is not implemented",
        ))
    }
}
