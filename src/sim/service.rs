//! The simulated node's channel state and its `lnrpc.Lightning` service.
//!
//! Every RPC passes the macaroon check first (as lnd's interceptor does),
//! then the test hooks (delay, injected failure), then behaves like lnd's
//! `rpcserver.go` for the subset in `proto/lnrpc/lightning.proto`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::SimError;
use super::backup::{self, REGTEST_GENESIS, Single};
use super::identity::{self, NodeKeys};
use crate::lnd::proto;
use crate::scb::ChanPoint;

/// Block height of a fresh simulated regtest chain.
const START_HEIGHT: u32 = 500;
/// GetInfo's version string, by emulated lnd release.
const VERSION_NEW: &str = "0.19.3-beta chanvault-sim";
const VERSION_OLD: &str = "0.18.5-beta chanvault-sim";
const ALIAS: &str = "chanvault-sim";

/// The RPCs the simulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Rpc {
    GetInfo,
    ListChannels,
    PendingChannels,
    ClosedChannels,
    ExportChannelBackup,
    ExportAllChannelBackups,
    VerifyChanBackup,
    RestoreChannelBackups,
    SubscribeChannelBackups,
}

impl Rpc {
    pub(crate) const ALL: [Rpc; 9] = [
        Rpc::GetInfo,
        Rpc::ListChannels,
        Rpc::PendingChannels,
        Rpc::ClosedChannels,
        Rpc::ExportChannelBackup,
        Rpc::ExportAllChannelBackups,
        Rpc::VerifyChanBackup,
        Rpc::RestoreChannelBackups,
        Rpc::SubscribeChannelBackups,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Rpc::GetInfo => "GetInfo",
            Rpc::ListChannels => "ListChannels",
            Rpc::PendingChannels => "PendingChannels",
            Rpc::ClosedChannels => "ClosedChannels",
            Rpc::ExportChannelBackup => "ExportChannelBackup",
            Rpc::ExportAllChannelBackups => "ExportAllChannelBackups",
            Rpc::VerifyChanBackup => "VerifyChanBackup",
            Rpc::RestoreChannelBackups => "RestoreChannelBackups",
            Rpc::SubscribeChannelBackups => "SubscribeChannelBackups",
        }
    }

    /// `MainRPCServerPermissions` in lnd's rpcserver.go.
    fn permission(self) -> (&'static str, &'static str) {
        match self {
            Rpc::GetInfo => ("info", "read"),
            Rpc::RestoreChannelBackups => ("offchain", "write"),
            _ => ("offchain", "read"),
        }
    }

    fn full_method(self) -> String {
        format!("/lnrpc.Lightning/{}", self.name())
    }

    /// Accepts `GetInfo` or `/lnrpc.Lightning/GetInfo`.
    pub(crate) fn parse(name: &str) -> Option<Rpc> {
        let short = name.strip_prefix("/lnrpc.Lightning/").unwrap_or(name);
        Rpc::ALL.into_iter().find(|r| r.name() == short)
    }
}

struct Channel {
    single: Single,
    /// Funding not confirmed yet (PendingChannels lists it; backups include it).
    pending: bool,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClosedRecord {
    channel_point: String,
    chan_id: u64,
    closing_tx_hash: String,
    remote_pubkey: String,
    capacity: i64,
    close_height: u32,
    settled_balance: i64,
}

/// What survives a process restart, in `sim-state.json`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Persisted {
    next_key_index: u32,
    block_height: u32,
    channels: Vec<PersistedChannel>,
    closed: Vec<ClosedRecord>,
    restored: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersistedChannel {
    /// Serialized (plaintext) Single, hex.
    single: String,
    pending: bool,
}

type SnapshotSender = mpsc::UnboundedSender<Result<proto::ChanBackupSnapshot, Status>>;

struct State {
    channels: BTreeMap<ChanPoint, Channel>,
    closed: Vec<(ChanPoint, ClosedRecord)>,
    restored: BTreeSet<ChanPoint>,
    next_key_index: u32,
    block_height: u32,
    subscribers: Vec<SnapshotSender>,
    fail_next: HashMap<Rpc, VecDeque<Status>>,
    delays: HashMap<Rpc, Duration>,
    calls: HashMap<Rpc, usize>,
}

/// The node: keys, channel state, subscribers and test hooks.
pub(crate) struct Shared {
    keys: NodeKeys,
    verify_returns_chan_points: bool,
    state_path: PathBuf,
    state: Mutex<State>,
}

fn display_hex(bytes: &[u8; 32]) -> String {
    let mut rev = *bytes;
    rev.reverse();
    hex::encode(rev)
}

fn rpc_chan_point(cp: ChanPoint) -> proto::ChannelPoint {
    proto::ChannelPoint {
        funding_txid: Some(proto::channel_point::FundingTxid::FundingTxidBytes(
            cp.txid.to_vec(),
        )),
        output_index: cp.index,
    }
}

fn sat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// btcd `chainhash.Decode` (display hex, may be short), with its error texts.
fn chainhash_from_str(s: &str) -> Result<Vec<u8>, String> {
    if s.len() > 64 {
        return Err("max hash string length is 64 bytes".into());
    }
    let padded = if s.len() % 2 == 1 {
        format!("0{s}")
    } else {
        s.to_string()
    };
    let decoded = identity::go_hex_decode(padded.as_bytes())?;
    let mut hash = vec![0u8; 32 - decoded.len()];
    hash.extend_from_slice(&decoded);
    hash.reverse();
    Ok(hash)
}

/// lnrpc `GetChanPointFundingTxid` followed by `chainhash.NewHash`.
fn chan_point_from_rpc(cp: Option<&proto::ChannelPoint>) -> Result<ChanPoint, String> {
    use proto::channel_point::FundingTxid;
    let txid = match cp.and_then(|c| c.funding_txid.as_ref()) {
        Some(FundingTxid::FundingTxidBytes(b)) => b.clone(),
        Some(FundingTxid::FundingTxidStr(s)) => chainhash_from_str(s)?,
        None => vec![],
    };
    let txid: [u8; 32] = txid
        .as_slice()
        .try_into()
        .map_err(|_| format!("invalid hash length of {}, want 32", txid.len()))?;
    Ok(ChanPoint {
        txid,
        index: cp.map_or(0, |c| c.output_index),
    })
}

impl Shared {
    /// Load the persisted state (if any) for a node with `keys`.
    pub(crate) fn load(
        keys: NodeKeys,
        verify_returns_chan_points: bool,
        state_path: PathBuf,
    ) -> Result<Self, SimError> {
        let corrupt = |reason: String| SimError::Corrupt {
            path: state_path.clone(),
            reason,
        };
        let mut state = State {
            channels: BTreeMap::new(),
            closed: vec![],
            restored: BTreeSet::new(),
            next_key_index: 0,
            block_height: START_HEIGHT,
            subscribers: vec![],
            fail_next: HashMap::new(),
            delays: HashMap::new(),
            calls: HashMap::new(),
        };
        match std::fs::read(&state_path) {
            Ok(bytes) => {
                let p: Persisted =
                    serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
                state.next_key_index = p.next_key_index;
                state.block_height = p.block_height;
                for c in p.channels {
                    let plain =
                        Zeroizing::new(hex::decode(&c.single).map_err(|e| corrupt(e.to_string()))?);
                    let single = Single::parse(&plain).map_err(corrupt)?;
                    state.channels.insert(
                        single.chan_point(),
                        Channel {
                            single,
                            pending: c.pending,
                        },
                    );
                }
                for r in p.closed {
                    let cp = r
                        .channel_point
                        .parse::<ChanPoint>()
                        .map_err(|e| corrupt(e.to_string()))?;
                    state.closed.push((cp, r));
                }
                for cp in p.restored {
                    let cp = cp
                        .parse()
                        .map_err(|e: crate::scb::ChanPointError| corrupt(e.to_string()))?;
                    state.restored.insert(cp);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SimError::Io {
                    path: state_path,
                    source,
                });
            }
        }
        Ok(Self {
            keys,
            verify_returns_chan_points,
            state_path,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn identity_pubkey(&self) -> String {
        hex::encode(self.keys.identity_pubkey)
    }

    /// Write the channel state durably; a failure is logged, not fatal.
    fn save(&self, st: &State) {
        let mut channels = vec![];
        for c in st.channels.values() {
            match c.single.serialize() {
                Ok(plain) => channels.push(PersistedChannel {
                    single: hex::encode(&plain[..]),
                    pending: c.pending,
                }),
                Err(e) => tracing::warn!(error = %e, "lnd-sim: cannot serialize a channel"),
            }
        }
        let p = Persisted {
            next_key_index: st.next_key_index,
            block_height: st.block_height,
            channels,
            closed: st.closed.iter().map(|(_, r)| r.clone()).collect(),
            restored: st.restored.iter().map(ToString::to_string).collect(),
        };
        let result = serde_json::to_vec_pretty(&p)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::fsutil::write_atomic(&self.state_path, &bytes, 0o600));
        if let Err(e) = result {
            tracing::warn!(path = %self.state_path.display(), error = %e, "lnd-sim: cannot save state");
        }
    }

    /// A full snapshot as lnd's `createBackupSnapshot` builds it: singles and
    /// the multi's channel points share one random order; the Singles inside
    /// the encrypted multi are shuffled independently.
    fn snapshot(&self, st: &State) -> Result<proto::ChanBackupSnapshot, String> {
        let key = &self.keys.backup_key;
        let mut singles: Vec<&Single> = st.channels.values().map(|c| &c.single).collect();
        singles.shuffle(&mut rand::thread_rng());
        let mut chan_backups = Vec::with_capacity(singles.len());
        for s in &singles {
            chan_backups.push(proto::ChannelBackup {
                chan_point: Some(rpc_chan_point(s.chan_point())),
                chan_backup: backup::pack_single(key, s)
                    .map_err(|e| format!("unable to pack set of chan backups: {e}"))?,
            });
        }
        let multi = backup::pack_multi(key, &singles)
            .map_err(|e| format!("unable to multi-pack backups: {e}"))?;
        let chan_points = chan_backups
            .iter()
            .filter_map(|b| b.chan_point.clone())
            .collect();
        Ok(proto::ChanBackupSnapshot {
            single_chan_backups: Some(proto::ChannelBackups { chan_backups }),
            multi_chan_backup: Some(proto::MultiChanBackup {
                chan_points,
                multi_chan_backup: multi,
            }),
        })
    }

    /// One channel-notifier event: every subscriber gets its own freshly
    /// packed full snapshot (lnd's handlers each re-read and re-encrypt).
    fn emit(&self, st: &mut State) {
        let subscribers = std::mem::take(&mut st.subscribers);
        for tx in subscribers {
            if tx.is_closed() {
                continue;
            }
            match self.snapshot(st) {
                Ok(snap) => {
                    if tx.send(Ok(snap)).is_ok() {
                        st.subscribers.push(tx);
                    }
                }
                // lnd's handler returns the error, which ends that stream.
                Err(e) => {
                    let _ = tx.send(Err(Status::unknown(e)));
                }
            }
        }
    }

    fn new_channel(&self, st: &mut State) -> Single {
        let mut rng = rand::thread_rng();
        st.block_height += rng.gen_range(1..4);
        let single = Single::random(&mut rng, st.next_key_index, st.block_height);
        st.next_key_index += 1;
        single
    }

    /// A new channel in the set (no event yet).
    fn add_channel(&self, st: &mut State, pending: bool) -> ChanPoint {
        let single = self.new_channel(st);
        let cp = single.chan_point();
        st.channels.insert(cp, Channel { single, pending });
        cp
    }

    /// Open `n` channels; each fires PendingOpen then Open (two snapshots).
    pub(crate) fn open_channels(&self, n: usize, confirm: bool) -> Vec<ChanPoint> {
        let mut st = self.lock();
        let mut opened = Vec::with_capacity(n);
        for _ in 0..n {
            let cp = self.add_channel(&mut st, true);
            self.emit(&mut st); // PendingOpenChannelEvent
            if confirm {
                if let Some(c) = st.channels.get_mut(&cp) {
                    c.pending = false;
                }
                self.emit(&mut st); // OpenChannelEvent
            }
            opened.push(cp);
        }
        self.save(&st);
        opened
    }

    /// Confirm a pending channel (OpenChannelEvent).
    pub(crate) fn confirm_channel(&self, cp: &ChanPoint) -> bool {
        let mut st = self.lock();
        match st.channels.get_mut(cp) {
            Some(c) if c.pending => c.pending = false,
            _ => return false,
        }
        st.block_height += 1;
        self.emit(&mut st);
        self.save(&st);
        true
    }

    /// Cooperative close: ClosedChannelEvent then FullyResolvedChannelEvent.
    pub(crate) fn close_channel(&self, cp: &ChanPoint) -> bool {
        let mut st = self.lock();
        if !self.record_close(&mut st, cp) {
            return false;
        }
        self.emit(&mut st); // ClosedChannelEvent
        self.emit(&mut st); // FullyResolvedChannelEvent
        self.save(&st);
        true
    }

    /// Setup for benchmarks: `n` confirmed channels appear with one snapshot
    /// in all (lnd would send two per channel; 9000 channels that way are
    /// ~36 GB of snapshots queued for a subscriber, as lnd's own queue would).
    pub(crate) fn open_channels_batch(&self, n: usize) {
        let mut st = self.lock();
        for _ in 0..n {
            self.add_channel(&mut st, false);
        }
        self.emit(&mut st);
        self.save(&st);
    }

    /// A burst: `events` channel events back to back, alternately a channel
    /// opening (confirmed at once) and that channel closing, one snapshot
    /// each; the state is saved once at the end, as lnd batches its own
    /// channel.backup writes. The channel set ends as it began when `events`
    /// is even.
    pub(crate) fn churn(&self, events: usize) {
        let mut st = self.lock();
        let mut newest = None;
        for _ in 0..events {
            match newest.take() {
                None => newest = Some(self.add_channel(&mut st, false)),
                Some(cp) => {
                    self.record_close(&mut st, &cp);
                }
            }
            self.emit(&mut st);
        }
        self.save(&st);
    }

    /// Remove an open channel and keep its close record (for ClosedChannels).
    fn record_close(&self, st: &mut State, cp: &ChanPoint) -> bool {
        let Some(channel) = st.channels.remove(cp) else {
            return false;
        };
        let mut rng = rand::thread_rng();
        st.block_height += 1;
        let mut closing_tx = [0u8; 32];
        rng.fill(&mut closing_tx);
        let capacity = channel.single.capacity_sat;
        let record = ClosedRecord {
            channel_point: cp.to_string(),
            chan_id: channel.single.short_chan_id,
            closing_tx_hash: display_hex(&closing_tx),
            remote_pubkey: hex::encode(channel.single.remote_node_pub),
            capacity: sat(capacity),
            close_height: st.block_height,
            settled_balance: sat(rng.gen_range(0..=capacity)),
        };
        st.closed.push((*cp, record));
        true
    }

    /// lnd#4377: the channel state disappears without close records.
    pub(crate) fn lose_channel_db(&self) -> usize {
        let mut st = self.lock();
        let lost = st.channels.len();
        st.channels.clear();
        self.emit(&mut st);
        self.save(&st);
        lost
    }

    pub(crate) fn channels(&self) -> BTreeSet<ChanPoint> {
        self.lock().channels.keys().copied().collect()
    }

    pub(crate) fn pending(&self) -> BTreeSet<ChanPoint> {
        let st = self.lock();
        st.channels
            .iter()
            .filter(|(_, c)| c.pending)
            .map(|(cp, _)| *cp)
            .collect()
    }

    pub(crate) fn closed(&self) -> BTreeSet<ChanPoint> {
        self.lock().closed.iter().map(|(cp, _)| *cp).collect()
    }

    pub(crate) fn restored(&self) -> BTreeSet<ChanPoint> {
        self.lock().restored.clone()
    }

    /// End every stream with status OK (what lnd does when it shuts down).
    pub(crate) fn end_streams(&self) -> usize {
        let mut st = self.lock();
        let n = st.subscribers.iter().filter(|s| !s.is_closed()).count();
        st.subscribers.clear();
        n
    }

    /// End every stream with `status`.
    pub(crate) fn fail_streams(&self, status: &Status) -> usize {
        let subscribers = std::mem::take(&mut self.lock().subscribers);
        subscribers
            .into_iter()
            .filter(|tx| tx.send(Err(status.clone())).is_ok())
            .count()
    }

    pub(crate) fn stream_count(&self) -> usize {
        let mut st = self.lock();
        st.subscribers.retain(|s| !s.is_closed());
        st.subscribers.len()
    }

    pub(crate) fn fail_next(&self, rpc: Rpc, status: tonic::Status) {
        self.lock()
            .fail_next
            .entry(rpc)
            .or_default()
            .push_back(status);
    }

    pub(crate) fn set_delay(&self, rpc: Rpc, d: Duration) {
        let mut st = self.lock();
        if d.is_zero() {
            st.delays.remove(&rpc);
        } else {
            st.delays.insert(rpc, d);
        }
    }

    pub(crate) fn calls(&self, rpc: Rpc) -> usize {
        self.lock().calls.get(&rpc).copied().unwrap_or(0)
    }

    pub(crate) fn decode_multi(&self, blob: &[u8]) -> Result<Vec<Single>, String> {
        backup::unpack_multi(&self.keys.backup_key, blob)
    }

    /// lnd's macaroon interceptor.
    fn check_macaroon(&self, rpc: Rpc, md: &MetadataMap) -> Result<(), Status> {
        let values: Vec<_> = md.get_all("macaroon").iter().collect();
        let [value] = values.as_slice() else {
            return Err(Status::unknown(format!(
                "expected 1 macaroon, got {}",
                values.len()
            )));
        };
        let raw = Zeroizing::new(
            identity::go_hex_decode(value.as_encoded_bytes()).map_err(Status::unknown)?,
        );
        let (entity, action) = rpc.permission();
        identity::authorize(
            &self.keys.macaroon_root_key,
            &raw,
            entity,
            action,
            &rpc.full_method(),
        )
        .map_err(Status::unknown)
    }
}

/// The gRPC face of [`Shared`].
#[derive(Clone)]
pub(crate) struct SimService {
    pub(crate) shared: Arc<Shared>,
}

impl SimService {
    /// Count the call, check the macaroon, then apply the test hooks.
    async fn enter(&self, rpc: Rpc, md: &MetadataMap) -> Result<(), Status> {
        let delay = {
            let mut st = self.shared.lock();
            *st.calls.entry(rpc).or_default() += 1;
            st.delays.get(&rpc).copied()
        };
        self.shared.check_macaroon(rpc, md)?;
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let injected = self
            .shared
            .lock()
            .fail_next
            .get_mut(&rpc)
            .and_then(VecDeque::pop_front);
        match injected {
            Some(status) => Err(status),
            None => Ok(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

#[tonic::async_trait]
impl proto::lightning_server::Lightning for SimService {
    async fn get_info(
        &self,
        request: Request<proto::GetInfoRequest>,
    ) -> Result<Response<proto::GetInfoResponse>, Status> {
        self.enter(Rpc::GetInfo, request.metadata()).await?;
        let st = self.state();
        let pending = st.channels.values().filter(|c| c.pending).count();
        let active = st.channels.len() - pending;
        // lnd still fills the deprecated `Chain.chain` next to `network`.
        #[allow(deprecated)]
        let chain = proto::Chain {
            chain: "bitcoin".into(),
            network: "regtest".into(),
        };
        Ok(Response::new(proto::GetInfoResponse {
            identity_pubkey: self.shared.identity_pubkey(),
            alias: ALIAS.into(),
            num_pending_channels: u32::try_from(pending).unwrap_or(u32::MAX),
            num_active_channels: u32::try_from(active).unwrap_or(u32::MAX),
            block_height: st.block_height,
            synced_to_chain: true,
            version: if self.shared.verify_returns_chan_points {
                VERSION_NEW
            } else {
                VERSION_OLD
            }
            .into(),
            chains: vec![chain],
            ..Default::default()
        }))
    }

    async fn list_channels(
        &self,
        request: Request<proto::ListChannelsRequest>,
    ) -> Result<Response<proto::ListChannelsResponse>, Status> {
        self.enter(Rpc::ListChannels, request.metadata()).await?;
        let req = request.into_inner();
        let st = self.state();
        // Every simulated channel is active and public.
        let channels = if req.inactive_only || req.private_only {
            vec![]
        } else {
            st.channels
                .iter()
                .filter(|(_, c)| !c.pending)
                .filter(|(_, c)| req.peer.is_empty() || req.peer == c.single.remote_node_pub)
                .map(|(cp, c)| proto::Channel {
                    active: true,
                    remote_pubkey: hex::encode(c.single.remote_node_pub),
                    channel_point: cp.to_string(),
                    chan_id: c.single.short_chan_id,
                    capacity: sat(c.single.capacity_sat),
                })
                .collect()
        };
        Ok(Response::new(proto::ListChannelsResponse { channels }))
    }

    async fn pending_channels(
        &self,
        request: Request<proto::PendingChannelsRequest>,
    ) -> Result<Response<proto::PendingChannelsResponse>, Status> {
        use proto::pending_channels_response::{PendingChannel, PendingOpenChannel};
        self.enter(Rpc::PendingChannels, request.metadata()).await?;
        let st = self.state();
        let pending_open_channels = st
            .channels
            .iter()
            .filter(|(_, c)| c.pending)
            .map(|(cp, c)| PendingOpenChannel {
                channel: Some(PendingChannel {
                    remote_node_pub: hex::encode(c.single.remote_node_pub),
                    channel_point: cp.to_string(),
                    capacity: sat(c.single.capacity_sat),
                }),
            })
            .collect();
        Ok(Response::new(proto::PendingChannelsResponse {
            total_limbo_balance: 0,
            pending_open_channels,
            ..Default::default()
        }))
    }

    async fn closed_channels(
        &self,
        request: Request<proto::ClosedChannelsRequest>,
    ) -> Result<Response<proto::ClosedChannelsResponse>, Status> {
        use proto::channel_close_summary::ClosureType;
        self.enter(Rpc::ClosedChannels, request.metadata()).await?;
        let r = request.into_inner();
        let filtered = r.cooperative
            || r.local_force
            || r.remote_force
            || r.breach
            || r.funding_canceled
            || r.abandoned;
        let st = self.state();
        // All simulated closes are cooperative.
        let channels = if filtered && !r.cooperative {
            vec![]
        } else {
            st.closed
                .iter()
                .map(|(_, c)| proto::ChannelCloseSummary {
                    channel_point: c.channel_point.clone(),
                    chan_id: c.chan_id,
                    chain_hash: display_hex(&REGTEST_GENESIS),
                    closing_tx_hash: c.closing_tx_hash.clone(),
                    remote_pubkey: c.remote_pubkey.clone(),
                    capacity: c.capacity,
                    close_height: c.close_height,
                    settled_balance: c.settled_balance,
                    close_type: ClosureType::CooperativeClose.into(),
                })
                .collect()
        };
        Ok(Response::new(proto::ClosedChannelsResponse { channels }))
    }

    async fn export_channel_backup(
        &self,
        request: Request<proto::ExportChannelBackupRequest>,
    ) -> Result<Response<proto::ChannelBackup>, Status> {
        self.enter(Rpc::ExportChannelBackup, request.metadata())
            .await?;
        let req = request.into_inner();
        let cp = chan_point_from_rpc(req.chan_point.as_ref()).map_err(Status::unknown)?;
        let st = self.state();
        let channel = st
            .channels
            .get(&cp)
            .ok_or_else(|| Status::unknown("unable to find target channel"))?;
        let chan_backup = backup::pack_single(&self.shared.keys.backup_key, &channel.single)
            .map_err(Status::unknown)?;
        Ok(Response::new(proto::ChannelBackup {
            chan_point: Some(rpc_chan_point(cp)),
            chan_backup,
        }))
    }

    async fn export_all_channel_backups(
        &self,
        request: Request<proto::ChanBackupExportRequest>,
    ) -> Result<Response<proto::ChanBackupSnapshot>, Status> {
        self.enter(Rpc::ExportAllChannelBackups, request.metadata())
            .await?;
        let st = self.state();
        self.shared
            .snapshot(&st)
            .map(Response::new)
            .map_err(Status::unknown)
    }

    async fn verify_chan_backup(
        &self,
        request: Request<proto::ChanBackupSnapshot>,
    ) -> Result<Response<proto::VerifyChanBackupResponse>, Status> {
        self.enter(Rpc::VerifyChanBackup, request.metadata())
            .await?;
        let req = request.into_inner();
        let key = &self.shared.keys.backup_key;
        let points = match (req.single_chan_backups, req.multi_chan_backup) {
            (None, None) => {
                return Err(Status::unknown(
                    "either a Single or Multi channel backup must be specified",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(Status::unknown(
                    "either a Single or Multi channel backup must be specified, but not both",
                ));
            }
            (Some(singles), None) => {
                let [one] = singles.chan_backups.as_slice() else {
                    return Err(Status::unknown("only one Single is accepted at a time"));
                };
                let single = backup::unpack_single(key, &one.chan_backup)
                    .map_err(|e| Status::unknown(format!("invalid single channel backup: {e}")))?;
                vec![single.chan_point().to_string()]
            }
            (None, Some(multi)) => backup::unpack_multi(key, &multi.multi_chan_backup)
                .map_err(|e| Status::unknown(format!("invalid multi channel backup: {e}")))?
                .iter()
                .map(|s| s.chan_point().to_string())
                .collect(),
        };
        Ok(Response::new(proto::VerifyChanBackupResponse {
            chan_points: if self.shared.verify_returns_chan_points {
                points
            } else {
                vec![]
            },
        }))
    }

    async fn restore_channel_backups(
        &self,
        request: Request<proto::RestoreChanBackupRequest>,
    ) -> Result<Response<proto::RestoreBackupResponse>, Status> {
        use proto::restore_chan_backup_request::Backup;
        self.enter(Rpc::RestoreChannelBackups, request.metadata())
            .await?;
        let key = &self.shared.keys.backup_key;
        let singles = match request.into_inner().backup {
            // No default case in lnd's switch: nothing to do, no error.
            None => vec![],
            Some(Backup::ChanBackups(list)) => list
                .chan_backups
                .iter()
                .map(|b| backup::unpack_single(key, &b.chan_backup))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Status::unknown(format!("unable to unpack single backups: {e}")))?,
            Some(Backup::MultiChanBackup(blob)) => backup::unpack_multi(key, &blob)
                .map_err(|e| Status::unknown(format!("unable to unpack chan backup: {e}")))?,
        };
        let mut st = self.state();
        let mut restored = 0u32;
        for s in &singles {
            let cp = s.chan_point();
            // channeldb.ErrChanAlreadyExists: skipped, not counted.
            if !st.channels.contains_key(&cp) && st.restored.insert(cp) {
                restored += 1;
            }
        }
        if restored > 0 {
            self.shared.save(&st);
        }
        Ok(Response::new(proto::RestoreBackupResponse {
            num_restored: if self.shared.verify_returns_chan_points {
                restored
            } else {
                0
            },
        }))
    }

    type SubscribeChannelBackupsStream =
        UnboundedReceiverStream<Result<proto::ChanBackupSnapshot, Status>>;

    async fn subscribe_channel_backups(
        &self,
        request: Request<proto::ChannelBackupSubscription>,
    ) -> Result<Response<Self::SubscribeChannelBackupsStream>, Status> {
        self.enter(Rpc::SubscribeChannelBackups, request.metadata())
            .await?;
        // Nothing is sent now: lnd only writes on channel events.
        let (tx, rx) = mpsc::unbounded_channel();
        self.state().subscribers.push(tx);
        Ok(Response::new(UnboundedReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_names_round_trip() {
        for rpc in Rpc::ALL {
            assert_eq!(Rpc::parse(rpc.name()), Some(rpc));
            assert_eq!(Rpc::parse(&rpc.full_method()), Some(rpc));
        }
        assert_eq!(Rpc::parse("ExportAllChannelBackup"), None);
    }

    #[test]
    fn chan_point_parsing_matches_lnrpc() {
        assert_eq!(
            chan_point_from_rpc(None).unwrap_err(),
            "invalid hash length of 0, want 32"
        );
        let cp: ChanPoint = format!("{}:1", "ab".repeat(32)).parse().unwrap();
        let by_str = proto::ChannelPoint {
            funding_txid: Some(proto::channel_point::FundingTxid::FundingTxidStr(
                "ab".repeat(32),
            )),
            output_index: 1,
        };
        assert_eq!(chan_point_from_rpc(Some(&by_str)).unwrap(), cp);
        assert_eq!(chan_point_from_rpc(Some(&rpc_chan_point(cp))).unwrap(), cp);
        let short = proto::ChannelPoint {
            funding_txid: Some(proto::channel_point::FundingTxid::FundingTxidBytes(vec![
                1;
                31
            ])),
            output_index: 0,
        };
        assert_eq!(
            chan_point_from_rpc(Some(&short)).unwrap_err(),
            "invalid hash length of 31, want 32"
        );
        let long = proto::ChannelPoint {
            funding_txid: Some(proto::channel_point::FundingTxid::FundingTxidStr(
                "0".repeat(65),
            )),
            output_index: 0,
        };
        assert_eq!(
            chan_point_from_rpc(Some(&long)).unwrap_err(),
            "max hash string length is 64 bytes"
        );
    }
}
