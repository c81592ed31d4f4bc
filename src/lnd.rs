//! The gRPC client for LND: TLS pinned to `tls.cert`, macaroon header, and
//! the few RPCs the backup pipeline needs.
//!
//! lnd's certificate is self-signed with `CA:true`, which webpki refuses as a
//! server certificate, so instead of chain validation we pin the exact
//! certificate bytes (and still check the handshake signature with its key).
//! lnd reports most failures as gRPC `Unknown` with Go error text; they are
//! mapped here to messages that say which file or setting to look at.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::scb::{ChanPoint, Snapshot};
use crate::secret::SecretBytes;

/// Generated lnrpc types (client and server) from `proto/lnrpc/lightning.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("lnrpc");
}

use proto::lightning_client::LightningClient;

mod frames;
mod node;
mod stream;
mod unary;
pub use stream::{BackupStream, NewestSnapshot, read_stream_bytes};

/// `ChanBackupSnapshot` as chanvault reads it: only the multi (field 2).
/// lnd also sends every channel's single backup (field 1), together as large
/// as the multi and tens of thousands of small allocations at 10,000
/// channels; prost skips a field the type lacks without allocating, so they
/// are never built (and on the backup stream `frames` skips their bytes as
/// they arrive). The simulator and the fuzz target use the full type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MultiOnlySnapshot {
    #[prost(message, optional, tag = "2")]
    pub multi_chan_backup: Option<SharedMultiBackup>,
}

/// lnd's `MultiChanBackup` with the blob as [`bytes::Bytes`]: decoded as a
/// view into the buffer it arrived in, not copied out of it. On the backup
/// stream that buffer holds exactly this message (`frames`), so the view
/// keeps nothing else alive. `VerifyChanBackup`'s request sends the same
/// view, not a copy.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SharedMultiBackup {
    #[prost(message, repeated, tag = "1")]
    pub chan_points: Vec<proto::ChannelPoint>,
    #[prost(bytes = "bytes", tag = "2")]
    pub multi_chan_backup: bytes::Bytes,
}

impl From<proto::MultiChanBackup> for SharedMultiBackup {
    fn from(m: proto::MultiChanBackup) -> Self {
        Self {
            chan_points: m.chan_points,
            multi_chan_backup: m.multi_chan_backup.into(),
        }
    }
}

/// A multi backup to verify: a snapshot's shared buffer is sent as it is,
/// other bytes are copied once.
pub trait MultiBlob {
    fn into_shared(self) -> bytes::Bytes;
}

impl MultiBlob for &bytes::Bytes {
    fn into_shared(self) -> bytes::Bytes {
        self.clone()
    }
}

impl MultiBlob for &[u8] {
    fn into_shared(self) -> bytes::Bytes {
        bytes::Bytes::copy_from_slice(self)
    }
}

impl MultiBlob for &Vec<u8> {
    fn into_shared(self) -> bytes::Bytes {
        bytes::Bytes::copy_from_slice(self)
    }
}

type Authed = InterceptedService<Channel, MacaroonAuth>;

/// How long to wait for the TCP + TLS handshake with LND.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message we accept from LND (a multi backup of ~10k channels is a few MB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How tonic's decoder words a reply it cannot read, and one longer than
/// its limit. `LndClient::status_error` tells a bad reply by these texts, so
/// chanvault's own readers of LND's bytes (`frames`, `unary`) word theirs so.
const UNDECODABLE: &str = "failed to decode Protobuf message";
const TOO_LARGE: &str = "message length too large";

/// A reply that is not the protobuf it should be, worded as tonic's decoder.
fn undecodable(what: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::internal(format!("{UNDECODABLE}: {what}"))
}

#[derive(Debug, thiserror::Error)]
pub enum LndError {
    #[error("cannot read LND TLS certificate {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read LND macaroon {path}: {reason}")]
    Macaroon { path: PathBuf, reason: String },
    #[error("LND at {address} is unreachable: {detail}")]
    Unreachable { address: String, detail: String },
    #[error(
        "LND at {address} presented a TLS certificate that does not match {cert}; if lnd regenerated tls.cert, copy the new one"
    )]
    TlsMismatch { address: String, cert: PathBuf },
    #[error("LND rejected the macaroon {path}: {detail}")]
    MacaroonRejected { path: PathBuf, detail: String },
    #[error(
        "LND refused {rpc}: the macaroon {path} lacks the permission (bake one with `lncli bakemacaroon {needs}`)"
    )]
    PermissionDenied {
        rpc: &'static str,
        path: PathBuf,
        needs: &'static str,
    },
    #[error("LND {rpc} timed out after {secs}s")]
    Timeout { rpc: &'static str, secs: u64 },
    /// LND answers, but too slowly for this request (a large backup during a
    /// burst): the connection is fine, so this is not worth a reconnect.
    #[error(
        "LND {rpc} did not answer within {secs}s for a {kib} KiB backup: LND is slow, not gone"
    )]
    Slow {
        rpc: &'static str,
        secs: u64,
        kib: usize,
    },
    #[error("LND {rpc} failed: {message}")]
    Rpc { rpc: &'static str, message: String },
    #[error("LND {rpc} sent a reply we cannot use: {reason}")]
    BadReply { rpc: &'static str, reason: String },
    #[error("LND closed the channel backup stream")]
    StreamEnded,
}

impl LndError {
    /// True when the failure is about reaching LND (worth a reconnect), not
    /// about our credentials or LND's answer.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            LndError::Unreachable { .. } | LndError::Timeout { .. } | LndError::StreamEnded
        )
    }
}

/// How much backup LND is given time for in `VerifyChanBackup`, on top of
/// `lnd.timeout_seconds`: a 3.6 MiB multi (10,000 channels) gets 36 s more.
/// lnd decrypts and parses every Single while it may be busy with a burst of
/// channel updates, so a fixed timeout fails exactly when backups matter.
const VERIFY_BYTES_PER_SECOND: usize = 100 * 1024;

/// `VerifyChanBackup`'s timeout for a multi of `len` bytes.
pub fn verify_timeout(base: Duration, len: usize) -> Duration {
    base + Duration::from_secs_f64(len as f64 / VERIFY_BYTES_PER_SECOND as f64)
}

/// Adds the hex macaroon header to every call.
#[derive(Clone)]
struct MacaroonAuth(MetadataValue<Ascii>);

impl Interceptor for MacaroonAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("macaroon", self.0.clone());
        Ok(req)
    }
}

/// Where and how to reach LND.
#[derive(Clone)]
pub struct LndSettings {
    pub address: String,
    pub tls_cert: PathBuf,
    pub macaroon: PathBuf,
    pub timeout: Duration,
}

impl From<&crate::config::LndConfig> for LndSettings {
    fn from(c: &crate::config::LndConfig) -> Self {
        Self {
            address: c.address.clone(),
            tls_cert: c.tls_cert.clone(),
            macaroon: c.macaroon.clone(),
            timeout: Duration::from_secs(c.timeout_seconds),
        }
    }
}

/// A connected LND client. Cheap to clone (one HTTP/2 connection).
#[derive(Clone)]
pub struct LndClient {
    rpc: LightningClient<Authed>,
    /// The same connection, for the two calls decoded as [`MultiOnlySnapshot`].
    grpc: tonic::client::Grpc<Authed>,
    /// The same connection as an HTTP/2 service, for the backup stream,
    /// whose body chanvault reads itself (`frames`).
    svc: Authed,
    settings: LndSettings,
    /// Where RPC round trips are recorded (`watch`); none for one-shot commands.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl fmt::Debug for LndClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LndClient")
            .field("address", &self.settings.address)
            .field("macaroon", &"<sensitive>")
            .finish()
    }
}

/// Read and check the pinned certificate.
pub fn load_cert(path: &Path) -> Result<CertificateDer<'static>, LndError> {
    let pem = std::fs::read(path).map_err(|e| LndError::Cert {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    CertificateDer::from_pem_slice(&pem).map_err(|e| LndError::Cert {
        path: path.to_path_buf(),
        reason: format!("not a PEM certificate ({e:?})"),
    })
}

/// Read the macaroon (binary, as lnd writes it). Hex files are accepted too.
pub fn load_macaroon(path: &Path) -> Result<SecretBytes, LndError> {
    let bytes = SecretBytes::new(std::fs::read(path).map_err(|e| LndError::Macaroon {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?);
    if bytes.is_empty() {
        return Err(LndError::Macaroon {
            path: path.to_path_buf(),
            reason: "file is empty".into(),
        });
    }
    let text = bytes.expose();
    let trimmed = text.trim_ascii();
    let looks_hex = !trimmed.is_empty()
        && trimmed.iter().all(u8::is_ascii_hexdigit)
        && trimmed.len().is_multiple_of(2);
    if looks_hex && let Ok(raw) = hex::decode(trimmed) {
        return Ok(SecretBytes::new(raw));
    }
    Ok(bytes)
}

impl LndClient {
    /// Connect: read credentials, TCP + TLS handshake, HTTP/2.
    pub async fn connect(settings: &LndSettings) -> Result<Self, LndError> {
        let macaroon = load_macaroon(&settings.macaroon)?;
        let header = zeroize::Zeroizing::new(hex::encode(macaroon.expose()));
        let header: MetadataValue<Ascii> = header.parse().map_err(|_| LndError::Macaroon {
            path: settings.macaroon.clone(),
            reason: "cannot be sent as a header".into(),
        })?;
        let channel = connect_channel(settings).await?;
        let auth = MacaroonAuth(header);
        let svc = InterceptedService::new(channel.clone(), auth.clone());
        let grpc =
            tonic::client::Grpc::new(svc.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES);
        let rpc = LightningClient::with_interceptor(channel, auth)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self {
            rpc,
            grpc,
            svc,
            settings: settings.clone(),
            metrics: None,
        })
    }

    /// Record every RPC's round trip in `metrics` (`chanvault_lnd_rpc_seconds`).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn address(&self) -> &str {
        &self.settings.address
    }

    async fn unary<T, F>(
        &self,
        rpc: &'static str,
        needs: &'static str,
        fut: F,
    ) -> Result<T, LndError>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.unary_within(self.settings.timeout, rpc, needs, fut)
            .await
    }

    async fn unary_within<T, F>(
        &self,
        timeout: Duration,
        rpc: &'static str,
        needs: &'static str,
        fut: F,
    ) -> Result<T, LndError>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let t0 = std::time::Instant::now();
        let outcome = tokio::time::timeout(timeout, fut).await;
        if let Some(m) = &self.metrics {
            m.lnd_rpc(rpc, t0.elapsed().as_secs_f64());
        }
        match outcome {
            Err(_) => Err(LndError::Timeout {
                rpc,
                secs: timeout.as_secs(),
            }),
            Ok(Err(status)) => Err(self.status_error(rpc, needs, &status)),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }

    /// Map lnd's status texts to errors that name the file to look at.
    pub fn status_error(
        &self,
        rpc: &'static str,
        needs: &'static str,
        s: &tonic::Status,
    ) -> LndError {
        // A status with a local source (h2/hyper/transport) was made by our
        // side when the connection broke; statuses decoded from LND's replies
        // never carry one. Those are connection problems, worth a reconnect.
        if let Some(src) = std::error::Error::source(s) {
            return LndError::Unreachable {
                address: self.settings.address.clone(),
                detail: format!("{}: {}", s.message(), crate::text::error_chain(src)),
            };
        }
        // LND's text goes into errors and logs: one line, whatever it sent.
        let msg = crate::text::one_line(s.message());
        let msg = msg.as_str();
        // Our own decoder's verdicts on what LND sent (tonic's texts): a
        // message that is not protobuf, or longer than MAX_MESSAGE_BYTES.
        if (s.code() == tonic::Code::Internal && msg.starts_with(UNDECODABLE))
            || (s.code() == tonic::Code::OutOfRange && msg.contains(TOO_LARGE))
        {
            return LndError::BadReply {
                rpc,
                reason: format!("cannot decode it ({msg})"),
            };
        }
        let path = self.settings.macaroon.clone();
        if msg.contains("permission denied") {
            return LndError::PermissionDenied { rpc, path, needs };
        }
        if msg.contains("macaroon") || msg.contains("verification failed") {
            return LndError::MacaroonRejected {
                path,
                detail: msg.to_string(),
            };
        }
        match s.code() {
            tonic::Code::Unavailable | tonic::Code::Cancelled => LndError::Unreachable {
                address: self.settings.address.clone(),
                detail: if msg.is_empty() {
                    format!("{:?}", s.code())
                } else {
                    msg.to_string()
                },
            },
            tonic::Code::DeadlineExceeded => LndError::Timeout {
                rpc,
                secs: self.settings.timeout.as_secs(),
            },
            _ => LndError::Rpc {
                rpc,
                message: if msg.is_empty() {
                    format!("{:?}", s.code())
                } else {
                    msg.to_string()
                },
            },
        }
    }

    /// A full snapshot of every channel's backup.
    pub async fn export_all(&self) -> Result<Snapshot, LndError> {
        const RPC: &str = "ExportAllChannelBackups";
        let mut grpc = self.grpc.clone();
        let call = async move {
            ready(&mut grpc).await?;
            grpc.unary(
                tonic::Request::new(proto::ChanBackupExportRequest {}),
                PathAndQuery::from_static("/lnrpc.Lightning/ExportAllChannelBackups"),
                multi_only_codec::<proto::ChanBackupExportRequest>(),
            )
            .await
        };
        let reply = self.unary(RPC, "offchain:read", call).await?;
        snapshot_from_multi(RPC, reply.multi_chan_backup)
    }

    /// Subscribe to snapshots. lnd sends nothing on subscribe, only on changes.
    /// The call is made on the HTTP/2 connection directly and its body read
    /// by [`frames::SnapshotFrames`] (see there why not by tonic).
    pub async fn subscribe(&self) -> Result<BackupStream, LndError> {
        let svc = self.svc.clone();
        let call = async move {
            let body = stream::open(svc, "/lnrpc.Lightning/SubscribeChannelBackups").await?;
            Ok(tonic::Response::new(body))
        };
        let body = self
            .unary("SubscribeChannelBackups", "offchain:read", call)
            .await?;
        Ok(BackupStream::new(body, self.clone()))
    }

    /// Ask LND whether it can read a multi backup. `Some(points)` from lnd ≥ 0.19,
    /// `None` from older versions, which answer with an empty message.
    pub async fn verify_multi(
        &self,
        multi: impl MultiBlob,
    ) -> Result<Option<BTreeSet<ChanPoint>>, LndError> {
        let multi = multi.into_shared();
        let kib = multi.len().div_ceil(1024);
        let timeout = verify_timeout(self.settings.timeout, multi.len());
        // Only the multi field: lnd refuses a snapshot with both set. Sent
        // as the view it is, not copied into an encoder's buffer (`unary`).
        let head = unary::verify_request_head(multi.len());
        let svc = self.svc.clone();
        let call = async move {
            let path = "/lnrpc.Lightning/VerifyChanBackup";
            let reply = unary::call(svc, path, head, multi, MAX_MESSAGE_BYTES).await?;
            <proto::VerifyChanBackupResponse as prost::Message>::decode(reply)
                .map(tonic::Response::new)
                .map_err(undecodable)
        };
        let reply = self
            .unary_within(timeout, "VerifyChanBackup", "offchain:read", call)
            .await
            .map_err(|e| match e {
                // The stream and the connection are fine (keepalives watch
                // those); LND is busy reading a large backup.
                LndError::Timeout { rpc, secs } => LndError::Slow { rpc, secs, kib },
                e => e,
            })?;
        if reply.chan_points.is_empty() {
            return Ok(None);
        }
        reply
            .chan_points
            .iter()
            .map(|s| {
                s.parse::<ChanPoint>().map_err(|e| LndError::BadReply {
                    rpc: "VerifyChanBackup",
                    reason: e.to_string(),
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Some)
    }
}

/// An HTTP/2 channel to LND over TLS pinned to `settings.tls_cert`, without
/// credentials. [`LndClient::connect`] adds the macaroon; tests use it to send
/// requests our client never sends.
pub async fn connect_channel(settings: &LndSettings) -> Result<Channel, LndError> {
    let cert = load_cert(&settings.tls_cert)?;
    let (host, port) = crate::config::parse_address(&settings.address).map_err(|detail| {
        LndError::Unreachable {
            address: settings.address.clone(),
            detail,
        }
    })?;
    let tls = tls_config(cert);
    let server_name = ServerName::try_from(host.clone()).map_err(|_| LndError::Unreachable {
        address: settings.address.clone(),
        detail: format!("{host:?} is not a valid host name"),
    })?;
    let connector = {
        let host = host.clone();
        tower::service_fn(move |_uri: http_uri::Uri| {
            let tls = tokio_rustls::TlsConnector::from(tls.clone());
            let host = host.clone();
            let server_name = server_name.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let stream = tls.connect(server_name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        })
    };
    // The scheme is http because the connector above does the TLS; the
    // authority only names the :authority header.
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let endpoint = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| LndError::Unreachable {
            address: settings.address.clone(),
            detail: e.to_string(),
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true);
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| connect_error(settings, &e))
}

fn chan_point_from_proto(
    rpc: &'static str,
    cp: &proto::ChannelPoint,
) -> Result<ChanPoint, LndError> {
    use proto::channel_point::FundingTxid;
    let bad = |reason: String| LndError::BadReply { rpc, reason };
    match &cp.funding_txid {
        Some(FundingTxid::FundingTxidBytes(b)) => {
            ChanPoint::from_wire(b, cp.output_index).map_err(|e| bad(e.to_string()))
        }
        Some(FundingTxid::FundingTxidStr(s)) => format!("{s}:{}", cp.output_index)
            .parse()
            .map_err(|e: crate::scb::ChanPointError| bad(e.to_string())),
        None => Err(bad("channel point without a funding txid".into())),
    }
}

/// Turn lnd's snapshot into ours: the multi blob and the channel points listed with it.
pub fn snapshot_from_proto(
    rpc: &'static str,
    s: proto::ChanBackupSnapshot,
) -> Result<Snapshot, LndError> {
    snapshot_from_multi(rpc, s.multi_chan_backup.map(Into::into))
}

/// The ready check the generated client does before each call; a
/// connection that cannot take a request is unavailable.
async fn ready(grpc: &mut tonic::client::Grpc<Authed>) -> Result<(), tonic::Status> {
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("service was not ready: {e}")))
}

fn multi_only_codec<Req>() -> tonic_prost::ProstCodec<Req, MultiOnlySnapshot>
where
    Req: prost::Message + Send + 'static,
{
    tonic_prost::ProstCodec::default()
}

fn snapshot_from_multi(
    rpc: &'static str,
    multi: Option<SharedMultiBackup>,
) -> Result<Snapshot, LndError> {
    let multi = multi.ok_or(LndError::BadReply {
        rpc,
        reason: "snapshot has no multi-channel backup".into(),
    })?;
    if multi.multi_chan_backup.is_empty() {
        return Err(LndError::BadReply {
            rpc,
            reason: "multi-channel backup is empty".into(),
        });
    }
    let mut chan_points = BTreeSet::new();
    for cp in &multi.chan_points {
        chan_points.insert(chan_point_from_proto(rpc, cp)?);
    }
    Ok(Snapshot {
        multi: multi.multi_chan_backup,
        chan_points,
    })
}

/// Make ring the process-wide rustls provider: the one crypto library in
/// the build (reqwest is built without its own, aws-lc-rs, and takes the
/// process default; tonic's server asks for it too). Every place that
/// builds an HTTP client calls this first. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn tls_config(cert: CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCert {
        cert,
        provider: provider.clone(),
    });
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| unreachable_tls())
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // grpc-go (lnd) requires ALPN h2.
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(cfg)
}

// ring supports the default protocol versions; this cannot fail.
fn unreachable_tls() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    rustls::ClientConfig::builder()
}

/// Message used inside the TLS error so that it can be recognised in the chain.
const PIN_MISMATCH: &str = "certificate does not match the pinned tls.cert";

#[derive(Debug)]
struct PinnedCert {
    cert: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(PIN_MISMATCH.into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn connect_error(settings: &LndSettings, e: &tonic::transport::Error) -> LndError {
    let detail = crate::text::error_chain(e);
    if detail.contains(PIN_MISMATCH) {
        return LndError::TlsMismatch {
            address: settings.address.clone(),
            cert: settings.tls_cert.clone(),
        };
    }
    // "transport error: error trying to connect: ..." -> keep the useful tail.
    let detail = detail
        .trim_start_matches("transport error: ")
        .trim_start_matches("error trying to connect: ")
        .to_string();
    LndError::Unreachable {
        address: settings.address.clone(),
        detail,
    }
}

mod http_uri {
    pub use tonic::codegen::http::Uri;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multi_only_decode_reads_lnds_snapshot_and_skips_the_singles() {
        use prost::Message;
        let multi = proto::MultiChanBackup {
            chan_points: vec![],
            multi_chan_backup: vec![7; 64],
        };
        let full = proto::ChanBackupSnapshot {
            single_chan_backups: Some(proto::ChannelBackups {
                chan_backups: vec![proto::ChannelBackup {
                    chan_point: None,
                    chan_backup: vec![1; 300],
                }],
            }),
            multi_chan_backup: Some(multi.clone()),
        };
        let slim = MultiOnlySnapshot::decode(full.encode_to_vec().as_slice()).unwrap();
        assert_eq!(slim.multi_chan_backup, Some(multi.into()));
        // Nothing of the singles is kept: re-encoded, only the multi is left.
        assert_eq!(
            slim.encoded_len(),
            full.encoded_len() - full.single_chan_backups.unwrap().encoded_len() - 3
        );
    }

    #[test]
    fn the_multi_is_a_view_into_the_received_message() {
        use prost::Message;
        let full = proto::ChanBackupSnapshot {
            single_chan_backups: None,
            multi_chan_backup: Some(proto::MultiChanBackup {
                chan_points: vec![],
                multi_chan_backup: vec![7; 4096],
            }),
        };
        // tonic hands the decoder its receive buffer, a BytesMut.
        let mut received = bytes::BytesMut::from(full.encode_to_vec().as_slice());
        let start = received.as_ptr() as usize;
        let end = start + received.len();
        let slim = MultiOnlySnapshot::decode(&mut received).unwrap();
        let snap = snapshot_from_multi("test", slim.multi_chan_backup).unwrap();
        assert_eq!(&snap.multi[..], &[7; 4096][..]);
        // Not a copy: the blob lies inside the buffer it was received in.
        let at = snap.multi.as_ptr() as usize;
        assert!(start <= at && at + snap.multi.len() <= end);
    }

    #[test]
    fn hex_macaroon_files_are_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m");
        std::fs::write(&p, "0201036c6e64\n").unwrap();
        assert_eq!(
            load_macaroon(&p).unwrap().expose(),
            &[2, 1, 3, 0x6c, 0x6e, 0x64]
        );
        std::fs::write(&p, [0x02u8, 0x01, 0xff]).unwrap();
        assert_eq!(load_macaroon(&p).unwrap().expose(), &[2, 1, 0xff]);
        std::fs::write(&p, b"").unwrap();
        assert!(load_macaroon(&p).unwrap_err().to_string().contains("empty"));
    }
}
