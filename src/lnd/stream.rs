//! The `SubscribeChannelBackups` stream, and the reader that keeps only the
//! newest snapshot of it.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use prost::Message;
use tonic::codegen::http;
use tonic::{Code, Status};
use tower::{Service, ServiceExt};

use super::frames::SnapshotFrames;
use super::{
    Authed, LndClient, LndError, MAX_MESSAGE_BYTES, SharedMultiBackup, snapshot_from_multi,
};
use crate::scb::Snapshot;

const RPC: &str = "SubscribeChannelBackups";
const NEEDS: &str = "offchain:read";
const CUT_OFF: &str = "the stream ended inside a message";

/// Start a server-streaming call whose request is the empty message (as
/// `ChannelBackupSubscription` is): the response body, once LND has
/// answered with headers that are not an error.
pub(super) async fn open(svc: Authed, path: &'static str) -> Result<tonic::body::Body, Status> {
    // One gRPC message: not compressed, length 0.
    let empty = http_body_util::Full::new(Bytes::from_static(&[0, 0, 0, 0, 0]));
    open_with(svc, path, tonic::body::Body::new(empty)).await
}

/// [`open`] with `body` as the request: gRPC messages, already framed.
pub(super) async fn open_with(
    mut svc: Authed,
    path: &'static str,
    body: tonic::body::Body,
) -> Result<tonic::body::Body, Status> {
    let req = http::Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .version(http::Version::HTTP_2)
        .header(http::header::TE, "trailers")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(body)
        .map_err(|e| Status::internal(format!("cannot build the request: {e}")))?;
    let svc = svc
        .ready()
        .await
        .map_err(|e| Status::unavailable(format!("service was not ready: {e}")))?;
    let resp = svc
        .call(req)
        .await
        .map_err(|e| Status::from_error(Box::new(e)))?;
    // An error before any message comes as "trailers-only": in the headers.
    if let Some(status) = Status::from_header_map(resp.headers())
        && status.code() != Code::Ok
    {
        return Err(status);
    }
    if resp.status() != http::StatusCode::OK {
        return Err(Status::new(
            http_code(resp.status()),
            format!("HTTP status {}", resp.status()),
        ));
    }
    Ok(tonic::body::Body::new(resp.into_body()))
}

/// gRPC's mapping of HTTP statuses from a peer that is not speaking gRPC
/// (a proxy in the way), as gRPC's "HTTP to gRPC Status Code Mapping".
fn http_code(s: http::StatusCode) -> Code {
    match s.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// The `SubscribeChannelBackups` stream.
pub struct BackupStream {
    body: tonic::body::Body,
    received: Received,
    client: LndClient,
}

/// The stream's body as read so far: what its chunks completed, in order,
/// not yet returned (a chunk can end several messages, or end in an error
/// after some). Shared by [`BackupStream::next`] and [`read_stream_bytes`].
struct Received {
    frames: SnapshotFrames,
    ready: VecDeque<Result<Option<Bytes>, LndError>>,
    /// A chunk did not parse: nothing after it is read.
    failed: bool,
    /// When the first byte of the message being read arrived.
    started: Option<std::time::Instant>,
}

impl Received {
    fn new() -> Self {
        Self {
            frames: SnapshotFrames::new(MAX_MESSAGE_BYTES),
            ready: VecDeque::new(),
            failed: false,
            started: None,
        }
    }

    /// Walk one chunk of the body: the messages it completes, then its error.
    fn take(&mut self, chunk: &[u8]) {
        if self.failed {
            return;
        }
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        let mut done = Vec::new();
        let fed = self.frames.feed(chunk, &mut done);
        if !done.is_empty() {
            // The stream's own share of a snapshot's latency: its first byte
            // to its last (the transfer and this walk), apart from LND's
            // packing before it and the pipeline after.
            tracing::debug!(
                messages = done.len(),
                recv_ms = started.elapsed().as_secs_f64() * 1e3,
                "backup stream message read"
            );
            self.started = None;
        }
        if !self.frames.at_boundary() && self.started.is_none() {
            self.started = Some(std::time::Instant::now());
        }
        self.ready.extend(done.into_iter().map(Ok));
        if let Err(e) = fed {
            self.failed = true;
            self.ready.push_back(Err(bad_reply(&e.0)));
        }
    }

    /// The oldest message not yet returned, decoded.
    fn next(&mut self) -> Option<Result<Snapshot, LndError>> {
        self.ready.pop_front().map(|r| r.and_then(decode))
    }

    /// The body ended: an error if it ended inside a message.
    fn cut_off(&self) -> Option<LndError> {
        (!self.failed && !self.frames.at_boundary()).then(|| bad_reply(CUT_OFF))
    }
}

impl BackupStream {
    pub(super) fn new(body: tonic::body::Body, client: LndClient) -> Self {
        Self {
            body,
            received: Received::new(),
            client,
        }
    }

    /// The next snapshot; `Err(StreamEnded)` when LND closes the stream.
    pub async fn next(&mut self) -> Result<Snapshot, LndError> {
        loop {
            if let Some(next) = self.received.next() {
                return next;
            }
            let frame = match self.body.frame().await {
                None => return Err(self.ended(None)),
                Some(Err(status)) => return Err(self.client.status_error(RPC, NEEDS, &status)),
                Some(Ok(frame)) => frame,
            };
            match frame.into_data() {
                Ok(data) => self.received.take(&data),
                Err(frame) => return Err(self.ended(frame.trailers_ref())),
            }
        }
    }

    /// The stream is over: LND's status from the trailers, if it is an error.
    fn ended(&self, trailers: Option<&http::HeaderMap>) -> LndError {
        match trailers.and_then(Status::from_header_map) {
            Some(s) if s.code() != Code::Ok => self.client.status_error(RPC, NEEDS, &s),
            _ => self.received.cut_off().unwrap_or(LndError::StreamEnded),
        }
    }
}

fn bad_reply(why: &str) -> LndError {
    LndError::BadReply {
        rpc: RPC,
        reason: format!("cannot decode it ({why})"),
    }
}

/// One message's field 2 (`None`: it had none) as a snapshot.
fn decode(multi: Option<Bytes>) -> Result<Snapshot, LndError> {
    let multi = match multi {
        Some(bytes) => {
            Some(SharedMultiBackup::decode(bytes).map_err(|e| bad_reply(&e.to_string()))?)
        }
        None => None,
    };
    snapshot_from_multi(RPC, multi)
}

impl BackupStream {
    /// Read the stream on a task of its own and keep only the newest snapshot.
    /// Every snapshot carries LND's whole multi backup, so one that is still
    /// waiting when a newer one arrives is worth nothing: during a burst of
    /// channel events the pipeline processes the newest state each time it is
    /// free, instead of working through a backlog. At most one decoded
    /// snapshot waits, whatever the peer sends.
    pub fn newest_only(mut self) -> NewestSnapshot {
        let slot = Arc::new(std::sync::Mutex::new(Slot::default()));
        let ready = Arc::new(tokio::sync::Notify::new());
        let (s, r) = (slot.clone(), ready.clone());
        let reader = tokio::spawn(async move {
            loop {
                let next = self.next().await;
                let ended = next.is_err();
                {
                    let mut slot = lock(&s);
                    match next {
                        Ok(snap) => {
                            if slot.newest.replace(snap).is_some() {
                                slot.superseded += 1;
                            }
                        }
                        Err(e) => slot.end = Some(e),
                    }
                }
                r.notify_one();
                if ended {
                    return;
                }
            }
        });
        NewestSnapshot {
            slot,
            ready,
            reader,
        }
    }
}

#[derive(Default)]
struct Slot {
    newest: Option<Snapshot>,
    /// Snapshots replaced by a newer one before anyone took them.
    superseded: u64,
    end: Option<LndError>,
}

fn lock(slot: &std::sync::Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    // The reader never panics while holding the lock; a poisoned slot is still consistent.
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The newest snapshot of a [`BackupStream`]; see [`BackupStream::newest_only`].
/// Dropping it stops the reader and closes the stream.
pub struct NewestSnapshot {
    slot: Arc<std::sync::Mutex<Slot>>,
    ready: Arc<tokio::sync::Notify>,
    reader: tokio::task::JoinHandle<()>,
}

impl NewestSnapshot {
    /// The newest snapshot not yet taken, with how many older ones it
    /// replaced; the stream's error once every snapshot before it was taken.
    pub async fn next(&mut self) -> Result<(Snapshot, u64), LndError> {
        loop {
            {
                let mut slot = lock(&self.slot);
                if let Some(snap) = slot.newest.take() {
                    return Ok((snap, std::mem::take(&mut slot.superseded)));
                }
                if let Some(e) = slot.end.take() {
                    return Err(e);
                }
                if self.reader.is_finished() {
                    return Err(LndError::StreamEnded);
                }
            }
            self.ready.notified().await;
        }
    }
}

impl Drop for NewestSnapshot {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The backup stream's body bytes, arriving in pieces of `piece` bytes,
/// read as [`BackupStream`] reads them: each message's snapshot, or the
/// error that ends the stream. The entry point of the `backup_stream` fuzz
/// target; the result must not depend on `piece`.
pub fn read_stream_bytes(body: &[u8], piece: usize) -> Vec<Result<Snapshot, LndError>> {
    let mut received = Received::new();
    let mut out = Vec::new();
    for bytes in body.chunks(piece.max(1)) {
        received.take(bytes);
        out.extend(std::iter::from_fn(|| received.next()));
    }
    out.extend(received.cut_off().map(Err));
    out
}
