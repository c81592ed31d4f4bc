//! The simulated node's state: its channels, close records and persisted
//! database, the snapshots it emits to backup subscribers, and the
//! macaroon check. `service.rs` serves it over `lnrpc.Lightning`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tonic::Status;
use tonic::metadata::MetadataMap;
use zeroize::Zeroizing;

use super::backup::{self, Single};
use super::identity;
use super::wallet::NodeKeys;
use super::{ChannelKind, SimError};
use crate::lnd::proto;
use crate::scb::ChanPoint;

/// Block height of a fresh simulated regtest chain.
const START_HEIGHT: u32 = 500;

use super::service::Rpc;

pub(super) struct Channel {
    pub(super) single: Single,
    /// Funding not confirmed yet (PendingChannels lists it; backups include it).
    pub(super) pending: bool,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClosedRecord {
    pub(super) channel_point: String,
    pub(super) chan_id: u64,
    pub(super) closing_tx_hash: String,
    pub(super) remote_pubkey: String,
    pub(super) capacity: i64,
    pub(super) close_height: u32,
    pub(super) settled_balance: i64,
}

/// What survives a process restart, in `sim-state.json`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Persisted {
    pub(super) next_key_index: u32,
    pub(super) block_height: u32,
    pub(super) channels: Vec<PersistedChannel>,
    pub(super) closed: Vec<ClosedRecord>,
    pub(super) restored: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PersistedChannel {
    /// Serialized (plaintext) Single, hex.
    pub(super) single: String,
    pub(super) pending: bool,
}

type SnapshotSender = mpsc::UnboundedSender<Result<proto::ChanBackupSnapshot, Status>>;

pub(super) struct State {
    pub(super) channels: BTreeMap<ChanPoint, Channel>,
    pub(super) closed: Vec<(ChanPoint, ClosedRecord)>,
    pub(super) restored: BTreeSet<ChanPoint>,
    pub(super) next_key_index: u32,
    pub(super) block_height: u32,
    pub(super) subscribers: Vec<SnapshotSender>,
    pub(super) fail_next: HashMap<Rpc, VecDeque<Status>>,
    pub(super) delays: HashMap<Rpc, Duration>,
    pub(super) calls: HashMap<Rpc, usize>,
    /// Bumped by every state change that is saved, so that saves made
    /// outside the lock never put an older state over a newer one.
    pub(super) generation: u64,
}

/// The node: keys, channel state, subscribers and test hooks.
pub(crate) struct Shared {
    pub(super) keys: NodeKeys,
    pub(super) verify_returns_chan_points: bool,
    pub(super) state_path: PathBuf,
    pub(super) state: Mutex<State>,
    /// The generation last written to `state_path`; held while writing.
    pub(super) saved: Mutex<u64>,
    /// Held while a snapshot is built and sent outside the state lock, so
    /// that snapshots still leave in the order of their events.
    pub(super) emitting: Mutex<()>,
    /// When the first snapshot since the last `take_handoff` went to a
    /// subscriber, and when the newest did (for the latency bench's t0).
    pub(super) handoff: Mutex<Option<(Instant, Instant)>>,
}

pub(super) fn display_hex(bytes: &[u8; 32]) -> String {
    let mut rev = *bytes;
    rev.reverse();
    hex::encode(rev)
}

pub(super) fn rpc_chan_point(cp: ChanPoint) -> proto::ChannelPoint {
    proto::ChannelPoint {
        funding_txid: Some(proto::channel_point::FundingTxid::FundingTxidBytes(
            cp.txid.to_vec(),
        )),
        output_index: cp.index,
    }
}

pub(super) fn sat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// btcd `chainhash.Decode` (display hex, may be short), with its error texts.
pub(super) fn chainhash_from_str(s: &str) -> Result<Vec<u8>, String> {
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
pub(super) fn chan_point_from_rpc(cp: Option<&proto::ChannelPoint>) -> Result<ChanPoint, String> {
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
            generation: 0,
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
            saved: Mutex::new(0),
            emitting: Mutex::new(()),
            handoff: Mutex::new(None),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn identity_pubkey(&self) -> String {
        hex::encode(self.keys.identity_pubkey.serialize())
    }

    /// Write the channel state durably; a failure is logged, not fatal.
    /// The file is written after the state lock is let go, as lnd writes
    /// channel.backup without holding up its RPCs: a `VerifyChanBackup`
    /// that arrives meanwhile is not made to wait for the fsync.
    pub(super) fn save(&self, mut st: MutexGuard<'_, State>) {
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
        st.generation += 1;
        let generation = st.generation;
        drop(st);
        let mut saved = self.saved.lock().unwrap_or_else(PoisonError::into_inner);
        if *saved > generation {
            return; // a newer state is already on disk
        }
        let result = serde_json::to_vec_pretty(&p)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::fsutil::write_atomic(&self.state_path, &bytes, 0o600));
        match result {
            Ok(()) => *saved = generation,
            Err(e) => {
                tracing::warn!(path = %self.state_path.display(), error = %e, "lnd-sim: cannot save state")
            }
        }
    }

    /// When the first snapshot since the last call and the newest one were
    /// handed to a subscriber; `None` when none was.
    pub(crate) fn take_handoff(&self) -> Option<(Instant, Instant)> {
        self.handoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn handed_off(&self) {
        let now = Instant::now();
        let mut h = self.handoff.lock().unwrap_or_else(PoisonError::into_inner);
        let first = h.map_or(now, |(first, _)| first);
        *h = Some((first, now));
    }

    /// A full snapshot as lnd's `createBackupSnapshot` builds it: singles and
    /// the multi's channel points share one random order; the Singles inside
    /// the encrypted multi are shuffled independently.
    pub(super) fn snapshot(&self, st: &State) -> Result<proto::ChanBackupSnapshot, String> {
        self.pack_snapshot(st.channels.values().map(|c| &c.single).collect())
    }

    fn pack_snapshot(
        &self,
        mut singles: Vec<&Single>,
    ) -> Result<proto::ChanBackupSnapshot, String> {
        let key = &self.keys.backup_key;
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
    pub(super) fn emit(&self, st: &mut State) {
        let subscribers = std::mem::take(&mut st.subscribers);
        for tx in subscribers {
            if tx.is_closed() {
                continue;
            }
            match self.snapshot(st) {
                Ok(snap) => {
                    if tx.send(Ok(snap)).is_ok() {
                        st.subscribers.push(tx);
                        self.handed_off();
                    }
                }
                // lnd's handler returns the error, which ends that stream.
                Err(e) => {
                    let _ = tx.send(Err(Status::unknown(e)));
                }
            }
        }
    }

    /// [`Shared::emit`] for one event, with the snapshots packed after the
    /// state lock is let go: lnd packs them in its channel notifier, and
    /// its RPCs (a `VerifyChanBackup` of the previous snapshot) do not
    /// wait for that.
    pub(super) fn emit_released(&self, st: MutexGuard<'_, State>) {
        // Taken before the state lock is let go (and never the other way
        // round while packing): events leave in order.
        let order = self.emitting.lock().unwrap_or_else(PoisonError::into_inner);
        let subscribers: Vec<SnapshotSender> = st
            .subscribers
            .iter()
            .filter(|s| !s.is_closed())
            .cloned()
            .collect();
        let singles: Vec<Single> = st.channels.values().map(|c| c.single.clone()).collect();
        drop(st);
        let mut failed = vec![];
        for tx in subscribers {
            match self.pack_snapshot(singles.iter().collect()) {
                Ok(snap) => {
                    if tx.send(Ok(snap)).is_ok() {
                        self.handed_off();
                    }
                }
                // lnd's handler returns the error, which ends that stream.
                Err(e) => {
                    let _ = tx.send(Err(Status::unknown(e)));
                    failed.push(tx);
                }
            }
        }
        drop(order);
        if !failed.is_empty() {
            self.lock()
                .subscribers
                .retain(|s| !s.is_closed() && !failed.iter().any(|f| f.same_channel(s)));
        }
    }

    /// A new channel's Single: of `kind`, or of a random one.
    pub(super) fn new_channel(&self, st: &mut State, kind: Option<ChannelKind>) -> Single {
        let mut rng = rand::thread_rng();
        st.block_height += rng.gen_range(1..4);
        let (index, height) = (st.next_key_index, st.block_height);
        let single = match kind {
            Some(k) => Single::random_of(&mut rng, index, height, k.version, k.close_tx_inputs),
            None => Single::random(&mut rng, index, height),
        };
        st.next_key_index += 1;
        single
    }

    /// A new channel in the set (no event yet).
    pub(super) fn add_channel(
        &self,
        st: &mut State,
        pending: bool,
        kind: Option<ChannelKind>,
    ) -> ChanPoint {
        let single = self.new_channel(st, kind);
        let cp = single.chan_point();
        st.channels.insert(cp, Channel { single, pending });
        cp
    }

    /// Open `n` channels; each fires PendingOpen then Open (two snapshots).
    /// `kind` chooses the Singles' version and CloseTxInputs (else random).
    pub(crate) fn open_channels(
        &self,
        n: usize,
        confirm: bool,
        kind: Option<ChannelKind>,
    ) -> Vec<ChanPoint> {
        // The lock is let go between events, as lnd's RPCs run between its
        // channel notifications.
        let mut opened = Vec::with_capacity(n);
        for _ in 0..n {
            let mut st = self.lock();
            let cp = self.add_channel(&mut st, true, kind);
            self.emit_released(st); // PendingOpenChannelEvent
            if confirm {
                let mut st = self.lock();
                if let Some(c) = st.channels.get_mut(&cp) {
                    c.pending = false;
                }
                self.emit_released(st); // OpenChannelEvent
            }
            opened.push(cp);
        }
        self.save(self.lock());
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
        self.save(st);
        true
    }

    /// Cooperative close: ClosedChannelEvent then FullyResolvedChannelEvent.
    pub(crate) fn close_channel(&self, cp: &ChanPoint) -> bool {
        let mut st = self.lock();
        if !self.record_close(&mut st, cp) {
            return false;
        }
        self.emit_released(st); // ClosedChannelEvent
        self.emit_released(self.lock()); // FullyResolvedChannelEvent
        self.save(self.lock());
        true
    }

    /// Setup for benchmarks: `n` confirmed channels appear with one snapshot
    /// in all (lnd would send two per channel; 9000 channels that way are
    /// ~36 GB of snapshots queued for a subscriber, as lnd's own queue would).
    pub(crate) fn open_channels_batch(&self, n: usize) {
        let mut st = self.lock();
        for _ in 0..n {
            self.add_channel(&mut st, false, None);
        }
        self.emit(&mut st);
        self.save(st);
    }

    /// A burst: `events` channel events back to back, alternately a channel
    /// opening (confirmed at once) and that channel closing, one snapshot
    /// each; the state is saved once at the end, as lnd batches its own
    /// channel.backup writes. The channel set ends as it began when `events`
    /// is even.
    pub(crate) fn churn(&self, events: usize) {
        let mut newest = None;
        for _ in 0..events {
            let mut st = self.lock();
            match newest.take() {
                None => newest = Some(self.add_channel(&mut st, false, None)),
                Some(cp) => {
                    self.record_close(&mut st, &cp);
                }
            }
            // Packed with the state lock let go, as for a single event: the
            // RPCs of a node in a burst (`VerifyChanBackup`, `ClosedChannels`)
            // do not wait for a whole slice of events.
            self.emit_released(st);
        }
        self.save(self.lock());
    }

    /// Remove an open channel and keep its close record (for ClosedChannels).
    pub(super) fn record_close(&self, st: &mut State, cp: &ChanPoint) -> bool {
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
        self.save(st);
        lost
    }

    pub(crate) fn channels(&self) -> BTreeSet<ChanPoint> {
        self.lock().channels.keys().copied().collect()
    }

    pub(crate) fn channel_kinds(&self) -> BTreeMap<ChanPoint, ChannelKind> {
        self.lock()
            .channels
            .iter()
            .map(|(cp, c)| {
                let byte = c.single.version_byte();
                let kind = ChannelKind {
                    version: byte & !backup::CLOSE_TX_INPUTS_BIT,
                    close_tx_inputs: byte & backup::CLOSE_TX_INPUTS_BIT != 0,
                };
                (*cp, kind)
            })
            .collect()
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
    pub(super) fn check_macaroon(&self, rpc: Rpc, md: &MetadataMap) -> Result<(), Status> {
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
