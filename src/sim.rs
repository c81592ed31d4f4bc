//! A stand-in for LND, for tests and `chanvault demo` (no lnd binary can be
//! installed where chanvault is developed).
//!
//! It serves the subset of `lnrpc.Lightning` in `proto/lnrpc/lightning.proto`
//! over real TLS, with lnd's behaviour wherever chanvault depends on it (see
//! `proto/NOTES.md`): an lnd-shaped self-signed `tls.cert`, macaroon files
//! checked on every call with lnd's error texts and per-RPC permissions,
//! static channel backups in lnd's exact binary format and encryption, and
//! `SubscribeChannelBackups` that is silent until a channel event and then
//! sends one full snapshot per event.
//!
//! Tests drive it through [`Simulator`]: open and close channels, drop
//! streams, stop and restart the server, inject failures and delays, and
//! count calls. Humans drive it through [`run_standalone`].
//!
//! The node has a real aezeed wallet (`aezeed.txt`, regtest): its identity
//! key and SCB key are derived from it as lnd derives them, and the Singles
//! carry real secp256k1 peer and channel keys, so the strict reader in
//! `crate::chanbackup` (and lnd) can open its backups.
//!
//! Singles come in every version lnd knows (0 to 7, anchors the most
//! common), about half of them with CloseTxInputs (version bit 7): a
//! commitment transaction spending the funding outpoint and the peer's
//! signature as lnd stores it. [`Simulator::channel_kinds`] says which is
//! which; [`Simulator::open_channel_of`] opens a channel of a given kind.
//!
//! Known differences from lnd: the channels' own keys are random points, not
//! derived from the wallet; the commitment's output scripts are random
//! hashes and keys, and its signature does not verify against the funding
//! output; macaroons are signed with a hash stand-in and caveats are not
//! supported; restored channels are recorded but not added to the channel
//! set.

pub(crate) mod backup;
mod hostile;
mod identity;
mod service;
mod standalone;
mod state;
mod wallet;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::{Identity, Server, ServerTlsConfig};
use zeroize::Zeroizing;

use crate::lnd::proto::lightning_server::LightningServer;
use crate::scb::ChanPoint;
use service::{Rpc, SimService};
use state::Shared;

pub use hostile::HostileStream;
pub use standalone::run_standalone;

/// Largest request the simulator accepts (lnd's `MaxGrpcMsgSize`, 200 MiB).
pub const MAX_MESSAGE_BYTES: usize = 200 * 1024 * 1024;
/// How long `stop` lets streams and in-flight calls finish before it cuts
/// the remaining connections.
const GRACEFUL_STOP: Duration = Duration::from_millis(300);
/// How long `stop` waits for the server task after cutting connections.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// `restart` retries binding the old port for this long.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);
const REBIND_STEP: Duration = Duration::from_millis(50);
/// File holding channel state across process restarts.
const STATE_FILE: &str = "sim-state.json";

/// How to start a [`Simulator`]. `Debug` hides the passphrase.
#[derive(Clone)]
pub struct SimOptions {
    /// Directory for tls.cert, tls.key, macaroons, wallet and state; created
    /// 0700 if missing, reused if present.
    pub dir: PathBuf,
    /// Where to listen; port 0 picks a free port (kept across restarts).
    pub listen: SocketAddr,
    /// `true` emulates lnd >= 0.19 (VerifyChanBackup returns the channel
    /// points, RestoreChannelBackups returns `num_restored`); `false` an older
    /// lnd that answers both with empty messages.
    pub verify_returns_chan_points: bool,
    /// The aezeed passphrase for a new wallet (`None`: a random one). Either
    /// way it is written to `aezeed-passphrase.txt`; a directory whose stored
    /// passphrase differs refuses to start.
    pub aezeed_passphrase: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("dir", &self.dir)
            .field("listen", &self.listen)
            .field(
                "verify_returns_chan_points",
                &self.verify_returns_chan_points,
            )
            .field(
                "aezeed_passphrase",
                &self.aezeed_passphrase.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl SimOptions {
    /// Listen on 127.0.0.1 with a free port, emulating lnd >= 0.19.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            verify_returns_chan_points: true,
            aezeed_passphrase: None,
        }
    }
}

/// Why the simulator could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("lnd-sim: cannot use {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("lnd-sim: {path} is corrupt ({reason}); delete it to start afresh")]
    Corrupt { path: PathBuf, reason: String },
    #[error("lnd-sim: cannot create the TLS certificate: {0}")]
    Cert(String),
    #[error("lnd-sim: TLS setup failed with {cert} / {key}: {detail}; delete both to regenerate")]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
    #[error("lnd-sim: cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    /// lnd's own text for a backup it cannot decrypt or parse.
    #[error("{0}")]
    Backup(String),
    #[error("lnd-sim: cannot write output: {0}")]
    Output(io::Error),
}

/// What the simulator wrote for one channel: lnd's Single version (0
/// default, 1 tweakless, 2 anchors, 3 anchors with zero-fee HTLC
/// transactions, 4 script-enforced lease, 5 simple taproot, 6 tapscript
/// root, 7 final taproot) and whether CloseTxInputs follow (bit 7 of the
/// version byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelKind {
    pub version: u8,
    pub close_tx_inputs: bool,
}

impl ChannelKind {
    /// Every kind the simulator writes: versions 0 to 7, each with and
    /// without CloseTxInputs.
    pub fn all() -> Vec<ChannelKind> {
        (0..=backup::MAX_SINGLE_VERSION)
            .flat_map(|version| {
                [false, true].map(|close_tx_inputs| ChannelKind {
                    version,
                    close_tx_inputs,
                })
            })
            .collect()
    }
}

/// A running (or stopped) simulated lnd. Clones share one node; the server
/// task is aborted when the last clone is dropped.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    dir: PathBuf,
    cert_pem: Vec<u8>,
    key_pem: Zeroizing<Vec<u8>>,
    running: Mutex<Option<Running>>,
    hostile: hostile::HostileSwitch,
}

struct Running {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    conns: Arc<ConnTracker>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.inner.addr)
            .field("dir", &self.inner.dir)
            .field("running", &self.is_running())
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let running = self
            .running
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(running) = running {
            running.conns.close_all();
            running.task.abort();
        }
        self.shared.end_streams();
    }
}

impl Simulator {
    /// Create or reuse the identity in `opts.dir`, bind, and start serving.
    pub async fn start(opts: SimOptions) -> Result<Simulator, SimError> {
        let files = identity::load_or_create(
            &opts.dir,
            opts.listen,
            opts.aezeed_passphrase.as_ref().map(|p| p.as_str()),
        )?;
        let shared = Arc::new(Shared::load(
            files.keys,
            opts.verify_returns_chan_points,
            opts.dir.join(STATE_FILE),
        )?);
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: opts.listen,
            source,
        })?;
        let inner = Inner {
            shared,
            addr,
            dir: opts.dir,
            cert_pem: files.cert_pem,
            key_pem: files.key_pem,
            running: Mutex::new(None),
            hostile: Default::default(),
        };
        let running = inner.serve(listener)?;
        *inner.lock_running() = Some(running);
        tracing::debug!(%addr, "lnd-sim: serving");
        Ok(Simulator {
            inner: Arc::new(inner),
        })
    }

    /// The bound address (stays the same across [`Simulator::restart`]).
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `host:port` for `lnd.address` (IPv6 in brackets).
    pub fn address(&self) -> String {
        self.inner.addr.to_string()
    }

    /// The simulator directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// `dir/tls.cert`: the certificate clients pin.
    pub fn tls_cert_path(&self) -> PathBuf {
        self.inner.dir.join(identity::TLS_CERT)
    }

    /// `dir/tls.key` (0600, SEC1 `EC PRIVATE KEY` like lnd's).
    pub fn tls_key_path(&self) -> PathBuf {
        self.inner.dir.join(identity::TLS_KEY)
    }

    /// `dir/admin.macaroon`: every permission.
    pub fn admin_macaroon_path(&self) -> PathBuf {
        self.inner.dir.join(identity::ADMIN_MACAROON)
    }

    /// `dir/readonly.macaroon`: every `:read` permission.
    pub fn readonly_macaroon_path(&self) -> PathBuf {
        self.inner.dir.join(identity::READONLY_MACAROON)
    }

    /// `dir/chanvault.macaroon`: only `offchain:read`, as
    /// `lncli bakemacaroon offchain:read` makes.
    pub fn offchain_read_macaroon_path(&self) -> PathBuf {
        self.inner.dir.join(identity::OFFCHAIN_READ_MACAROON)
    }

    /// Client settings for this node with the given macaroon (10 s timeout).
    pub fn lnd_settings(&self, macaroon: &Path) -> crate::lnd::LndSettings {
        crate::lnd::LndSettings {
            address: self.address(),
            tls_cert: self.tls_cert_path(),
            macaroon: macaroon.to_path_buf(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The node's identity pubkey as GetInfo reports it (hex).
    pub fn identity_pubkey(&self) -> String {
        self.inner.shared.identity_pubkey()
    }

    /// The node's identity key, m/1017'/1'/6'/0/0 of the wallet.
    pub fn node_pubkey(&self) -> bitcoin::secp256k1::PublicKey {
        self.inner.shared.keys.identity_pubkey
    }

    /// `dir/aezeed.txt`: the wallet's 24 words (0600).
    pub fn aezeed_path(&self) -> PathBuf {
        self.inner.dir.join(wallet::AEZEED)
    }

    /// `dir/aezeed-passphrase.txt`: the passphrase of those words (0600).
    pub fn aezeed_passphrase_path(&self) -> PathBuf {
        self.inner.dir.join(wallet::AEZEED_PASSPHRASE)
    }

    /// The backup account m/1017'/1'/7' as `lncli wallet accounts list`
    /// prints it (a tpub). It opens every backup of this node: a secret.
    pub fn backup_account_xpub(&self) -> String {
        self.inner.shared.keys.backup_account_xpub.to_string()
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        self.inner.lock_running().is_some()
    }

    /// Open a channel with a new random funding outpoint. Like lnd, this
    /// emits a snapshot on PendingOpen and again on Open (same channel set).
    pub fn open_channel(&self) -> ChanPoint {
        let mut opened = self.open_channels(1);
        opened.pop().unwrap_or(ChanPoint {
            txid: [0; 32],
            index: 0,
        })
    }

    /// [`Simulator::open_channel`] `n` times (2·n snapshots).
    pub fn open_channels(&self, n: usize) -> Vec<ChanPoint> {
        self.inner.shared.open_channels(n, true, None)
    }

    /// [`Simulator::open_channel`], with a Single of `kind` rather than a
    /// random one. A version above 7 is written as given (lnd would refuse
    /// to write it, and readers refuse it).
    pub fn open_channel_of(&self, kind: ChannelKind) -> ChanPoint {
        let mut opened = self.inner.shared.open_channels(1, true, Some(kind));
        opened.pop().unwrap_or(ChanPoint {
            txid: [0; 32],
            index: 0,
        })
    }

    /// Start opening a channel but leave its funding unconfirmed: one
    /// snapshot (PendingOpen); PendingChannels lists it; backups include it.
    pub fn open_pending_channel(&self) -> ChanPoint {
        let mut opened = self.inner.shared.open_channels(1, false, None);
        opened.pop().unwrap_or(ChanPoint {
            txid: [0; 32],
            index: 0,
        })
    }

    /// Confirm a pending channel (one snapshot). False if it is not pending.
    pub fn confirm_channel(&self, cp: &ChanPoint) -> bool {
        self.inner.shared.confirm_channel(cp)
    }

    /// Cooperatively close a channel: it leaves the backup set, appears in
    /// ClosedChannels, and two snapshots go out (Closed, FullyResolved).
    /// False if the channel is unknown.
    pub fn close_channel(&self, cp: &ChanPoint) -> bool {
        self.inner.shared.close_channel(cp)
    }

    /// `n` confirmed channels with a single snapshot: benchmark setup (see
    /// `open_channels` for lnd's two snapshots per channel).
    pub fn open_channels_batch(&self, n: usize) {
        self.inner.shared.open_channels_batch(n)
    }

    /// `events` channel events back to back (open, close, open, …), one
    /// snapshot each, state saved once at the end: a load generator for
    /// bursts that a per-event save could not produce fast enough.
    pub fn churn(&self, events: usize) {
        self.inner.shared.churn(events)
    }

    /// When the first snapshot since the last call and the newest one went
    /// to the backup stream's subscribers (`None`: none did). The latency
    /// bench's t0: what LND does before it hands a snapshot over is LND's
    /// time, not chanvault's.
    pub fn take_handoff(&self) -> Option<(std::time::Instant, std::time::Instant)> {
        self.inner.shared.take_handoff()
    }

    /// lnd#4377: the channel DB loses every channel without close records;
    /// one (empty) snapshot goes out. Returns how many channels were lost.
    pub fn lose_channel_db(&self) -> usize {
        self.inner.shared.lose_channel_db()
    }

    /// Channels in the backup set (open and pending).
    pub fn channels(&self) -> BTreeSet<ChanPoint> {
        self.inner.shared.channels()
    }

    /// The channels in the backup set with the version and CloseTxInputs
    /// their Singles are written with.
    pub fn channel_kinds(&self) -> BTreeMap<ChanPoint, ChannelKind> {
        self.inner.shared.channel_kinds()
    }

    /// Channels whose funding is not confirmed yet.
    pub fn pending_channels(&self) -> BTreeSet<ChanPoint> {
        self.inner.shared.pending()
    }

    /// Channels closed through [`Simulator::close_channel`].
    pub fn closed(&self) -> BTreeSet<ChanPoint> {
        self.inner.shared.closed()
    }

    /// Channels RestoreChannelBackups restored.
    pub fn restored(&self) -> BTreeSet<ChanPoint> {
        self.inner.shared.restored()
    }

    /// End every SubscribeChannelBackups stream with status OK (clients see
    /// the end of the stream). Returns how many were open.
    pub fn drop_streams(&self) -> usize {
        self.inner.shared.end_streams()
    }

    /// End every SubscribeChannelBackups stream with `status` (e.g. lnd's
    /// `unable to fetch all static chan backups: ...`).
    pub fn fail_streams(&self, status: tonic::Status) -> usize {
        self.inner.shared.fail_streams(&status)
    }

    /// From now on, answer every new SubscribeChannelBackups call with
    /// `mode` instead of snapshots (`None`: behave again). Streams already
    /// open are not touched; [`Simulator::drop_streams`] ends them.
    pub fn set_hostile_stream(&self, mode: Option<HostileStream>) {
        *self
            .inner
            .hostile
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = mode;
    }

    /// Open SubscribeChannelBackups streams.
    pub fn stream_count(&self) -> usize {
        self.inner.shared.stream_count()
    }

    /// Stop like lnd shutting down: streams end with OK, the listener closes
    /// (new connections are refused), calls in flight get a short grace
    /// period, then every connection is cut and the server task is joined.
    pub async fn stop(&self) {
        self.inner.stop(true).await;
    }

    /// Stop like lnd being killed: connections are cut at once, streams
    /// break without a status.
    pub async fn kill(&self) {
        self.inner.stop(false).await;
    }

    /// Stop (if running) and serve again on the same address with the same
    /// certificate, macaroons, wallet and channel state.
    pub async fn restart(&self) -> Result<(), SimError> {
        self.inner.stop(true).await;
        let listener = bind_retrying(self.inner.addr).await?;
        let running = self.inner.serve(listener)?;
        let old = self.inner.lock_running().replace(running);
        if let Some(old) = old {
            // A concurrent restart won the race; keep only one server.
            old.conns.close_all();
            old.task.abort();
        }
        Ok(())
    }

    /// The next call of `rpc` (e.g. `"ExportAllChannelBackups"`) fails with
    /// `status` after the macaroon check. Calls queue up.
    pub fn fail_next(&self, rpc: &str, status: tonic::Status) {
        match Rpc::parse(rpc) {
            Some(r) => self.inner.shared.fail_next(r, status),
            None => tracing::warn!(rpc, "lnd-sim: fail_next for an unknown RPC is ignored"),
        }
    }

    /// Delay every reply of `rpc` by `d` (zero removes the delay).
    pub fn set_delay(&self, rpc: &str, d: Duration) {
        match Rpc::parse(rpc) {
            Some(r) => self.inner.shared.set_delay(r, d),
            None => tracing::warn!(rpc, "lnd-sim: set_delay for an unknown RPC is ignored"),
        }
    }

    /// How many times `rpc` was called (including calls refused for their
    /// macaroon or failed on purpose). Unknown names count 0.
    pub fn calls(&self, rpc: &str) -> usize {
        Rpc::parse(rpc).map_or(0, |r| self.inner.shared.calls(r))
    }

    /// Decrypt and parse a packed multi backup with this node's key. The
    /// error is lnd's text, e.g. `chacha20poly1305: message authentication failed`.
    pub fn decode_multi(&self, blob: &[u8]) -> Result<BTreeSet<ChanPoint>, SimError> {
        self.decode_multi_ordered(blob)
            .map(|v| v.into_iter().collect())
    }

    /// Like [`Simulator::decode_multi`], in blob order (duplicates kept).
    pub fn decode_multi_ordered(&self, blob: &[u8]) -> Result<Vec<ChanPoint>, SimError> {
        self.inner
            .shared
            .decode_multi(blob)
            .map(|singles| singles.iter().map(|s| s.chan_point()).collect())
            .map_err(SimError::Backup)
    }
}

impl Inner {
    fn lock_running(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn serve(&self, listener: TcpListener) -> Result<Running, SimError> {
        let tls_err = |detail: String| SimError::Tls {
            cert: self.dir.join(identity::TLS_CERT),
            key: self.dir.join(identity::TLS_KEY),
            detail,
        };
        crate::lnd::install_crypto_provider();
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(&self.cert_pem, self.key_pem.as_slice()));
        let mut builder = Server::builder()
            .tls_config(tls)
            .map_err(|e| tls_err(crate::text::error_chain(&e)))?;
        let svc = hostile::Hostile {
            inner: LightningServer::new(SimService {
                shared: self.shared.clone(),
            })
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
            switch: self.hostile.clone(),
        };
        let conns = Arc::new(ConnTracker::default());
        let tracker = conns.clone();
        let incoming = TcpListenerStream::new(listener)
            .map(move |accepted| accepted.and_then(|tcp| tracker.track(tcp)));
        let (shutdown, signal) = oneshot::channel::<()>();
        let router = builder.add_service(svc);
        let task = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, async {
                    // A dropped sender (simulator dropped) also means stop.
                    let _ = signal.await;
                })
                .await
        });
        Ok(Running {
            shutdown,
            task,
            conns,
        })
    }

    async fn stop(&self, graceful: bool) {
        let Some(running) = self.lock_running().take() else {
            return;
        };
        let Running {
            shutdown,
            mut task,
            conns,
        } = running;
        if graceful {
            self.shared.end_streams();
            let _ = shutdown.send(());
            if tokio::time::timeout(GRACEFUL_STOP, &mut task).await.is_ok() {
                conns.close_all();
                return;
            }
            conns.close_all();
        } else {
            conns.close_all();
            let _ = shutdown.send(());
            self.shared.end_streams();
        }
        match tokio::time::timeout(JOIN_TIMEOUT, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "lnd-sim: server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "lnd-sim: server task failed"),
            Err(_) => {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

async fn bind_retrying(addr: SocketAddr) -> Result<TcpListener, SimError> {
    let deadline = tokio::time::Instant::now() + REBIND_TIMEOUT;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(REBIND_STEP).await;
            }
            Err(source) => return Err(SimError::Bind { addr, source }),
        }
    }
}

/// Keeps a duplicate handle of every accepted socket so that `stop` can cut
/// connections that hyper's connection tasks would otherwise keep alive.
#[derive(Default)]
struct ConnTracker {
    inner: Mutex<TrackerState>,
}

#[derive(Default)]
struct TrackerState {
    closed: bool,
    next_id: u64,
    conns: std::collections::HashMap<u64, std::net::TcpStream>,
}

impl ConnTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn track(self: &Arc<Self>, tcp: TcpStream) -> io::Result<TrackedStream> {
        tcp.set_nodelay(true)?;
        let dup = std::net::TcpStream::from(tcp.as_fd().try_clone_to_owned()?);
        let mut st = self.lock();
        if st.closed {
            let _ = dup.shutdown(std::net::Shutdown::Both);
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "lnd-sim is stopping",
            ));
        }
        let id = st.next_id;
        st.next_id += 1;
        st.conns.insert(id, dup);
        Ok(TrackedStream {
            io: tcp,
            id,
            tracker: self.clone(),
        })
    }

    /// Refuse new connections and shut down every open one (both ways).
    fn close_all(&self) {
        let mut st = self.lock();
        st.closed = true;
        for (_, conn) in st.conns.drain() {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// An accepted connection that unregisters itself when hyper drops it.
struct TrackedStream {
    io: TcpStream,
    id: u64,
    tracker: Arc<ConnTracker>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        self.tracker.lock().conns.remove(&self.id);
    }
}

impl Connected for TrackedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
