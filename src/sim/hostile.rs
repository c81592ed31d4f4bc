//! A broken or hostile lnd: while set, `SubscribeChannelBackups` answers
//! with raw gRPC frames that no real snapshot could produce. The wrapper sits
//! in front of the generated service, below TLS and HTTP/2, so the client sees
//! exactly what a misbehaving peer on the wire would send.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use tokio_stream::StreamExt;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;
use tower::Service;

const SUBSCRIBE_PATH: &str = "/lnrpc.Lightning/SubscribeChannelBackups";
/// Size of each chunk of an oversized message's body.
const CHUNK: usize = 16 * 1024;

/// What a hostile lnd sends on `SubscribeChannelBackups` instead of snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostileStream {
    /// One complete gRPC message whose bytes are not a `ChanBackupSnapshot`
    /// (a varint that never ends), then silence with the stream left open.
    Garbage,
    /// A gRPC message header that declares `declared` bytes, then zeros for as
    /// long as the client keeps reading (HTTP/2 flow control paces them).
    Oversized { declared: u32 },
}

pub(crate) type HostileSwitch = Arc<Mutex<Option<HostileStream>>>;

/// The generated service, with `SubscribeChannelBackups` taken over while
/// the switch holds a [`HostileStream`].
#[derive(Clone)]
pub(crate) struct Hostile<S> {
    pub(crate) inner: S,
    pub(crate) switch: HostileSwitch,
}

impl<S: NamedService> NamedService for Hostile<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl<S> Service<http::Request<Body>> for Hostile<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> BoxFuture {
        let mode = *self.switch.lock().unwrap_or_else(PoisonError::into_inner);
        match mode {
            Some(mode) if req.uri().path() == SUBSCRIBE_PATH => {
                tracing::debug!(
                    ?mode,
                    "lnd-sim: answering SubscribeChannelBackups with a hostile stream"
                );
                Box::pin(async move { Ok(hostile_response(mode)) })
            }
            _ => Box::pin(self.inner.call(req)),
        }
    }
}

/// A gRPC message header: not compressed, then the length, big-endian.
fn grpc_header(len: u32) -> Vec<u8> {
    let mut h = vec![0u8];
    h.extend_from_slice(&len.to_be_bytes());
    h
}

fn hostile_response(mode: HostileStream) -> http::Response<Body> {
    type Item = Result<Frame<Bytes>, tonic::Status>;
    let body: Pin<Box<dyn tokio_stream::Stream<Item = Item> + Send>> = match mode {
        HostileStream::Garbage => {
            // 0xff bytes: a field key whose varint never terminates.
            let junk = [0xffu8; 40];
            let mut msg = grpc_header(junk.len() as u32);
            msg.extend_from_slice(&junk);
            let first = Ok(Frame::data(Bytes::from(msg)));
            Box::pin(tokio_stream::iter([first]).chain(tokio_stream::pending()))
        }
        HostileStream::Oversized { declared } => {
            let header = Ok(Frame::data(Bytes::from(grpc_header(declared))));
            let zeros = Bytes::from(vec![0u8; CHUNK]);
            let rest = tokio_stream::iter(std::iter::repeat_with(move || {
                Ok(Frame::data(zeros.clone()))
            }));
            Box::pin(tokio_stream::iter([header]).chain(rest))
        }
    };
    let mut resp = http::Response::new(Body::new(StreamBody::new(body)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    resp
}
