//! `helloworld.Greeter`: the four call kinds, with a configurable greeting.

use grpc_interop::pb::helloworld::greeter_server::{Greeter, GreeterServer};
use grpc_interop::pb::helloworld::{HelloReply, HelloRequest, HelloStreamRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status, Streaming};

/// Largest `count` SayHelloStream accepts (the proto's limit).
pub const MAX_STREAM_COUNT: i32 = 1000;

/// How many replies a streaming handler may queue ahead of the client.
const REPLY_QUEUE: usize = 16;

type ReplyStream = ReceiverStream<Result<HelloReply, Status>>;

/// The Greeter handlers; `greeting` is the first word of every reply.
#[derive(Debug, Clone)]
pub struct GreeterImpl {
    greeting: String,
}

impl GreeterImpl {
    /// A greeter that answers "<greeting> <name>".
    pub fn new(greeting: impl Into<String>) -> Self {
        Self {
            greeting: greeting.into(),
        }
    }
}

/// Builds the service as the server registers it. It accepts gzip requests,
/// so a client that compresses by default is served; replies go uncompressed.
pub fn service(greeting: &str) -> GreeterServer<GreeterImpl> {
    GreeterServer::new(GreeterImpl::new(greeting)).accept_compressed(CompressionEncoding::Gzip)
}

fn reply(message: String, index: i32) -> HelloReply {
    HelloReply { message, index }
}

#[tonic::async_trait]
impl Greeter for GreeterImpl {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        Ok(Response::new(reply(format!("{} {name}", self.greeting), 0)))
    }

    type SayHelloStreamStream = ReplyStream;

    async fn say_hello_stream(
        &self,
        request: Request<HelloStreamRequest>,
    ) -> Result<Response<Self::SayHelloStreamStream>, Status> {
        let HelloStreamRequest { name, count } = request.into_inner();
        if !(0..=MAX_STREAM_COUNT).contains(&count) {
            return Err(Status::invalid_argument(format!(
                "count {count} is outside 0..={MAX_STREAM_COUNT}"
            )));
        }
        let greeting = self.greeting.clone();
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        tokio::spawn(async move {
            for i in 1..=count {
                let message = format!("{greeting} {name} ({i} of {count})");
                if tx.send(Ok(reply(message, i))).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn say_hello_to_all(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<HelloReply>, Status> {
        let mut stream = request.into_inner();
        let mut names = Vec::new();
        while let Some(message) = stream.message().await? {
            names.push(message.name);
        }
        let count =
            i32::try_from(names.len()).map_err(|_| Status::invalid_argument("too many names"))?;
        Ok(Response::new(reply(
            format!("{} {}", self.greeting, names.join(", ")),
            count,
        )))
    }

    type SayHelloChatStream = ReplyStream;

    async fn say_hello_chat(
        &self,
        request: Request<Streaming<HelloRequest>>,
    ) -> Result<Response<Self::SayHelloChatStream>, Status> {
        let mut stream = request.into_inner();
        let greeting = self.greeting.clone();
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        tokio::spawn(async move {
            let mut index = 0;
            loop {
                let next = match stream.message().await {
                    Ok(Some(message)) => {
                        index += 1;
                        Ok(reply(format!("{greeting} {}", message.name), index))
                    }
                    Ok(None) => return,
                    Err(status) => Err(status),
                };
                let failed = next.is_err();
                if tx.send(next).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
