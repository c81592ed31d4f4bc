//! The simulated node's `lnrpc.Lightning` service over its state (`state.rs`).
//!
//! Every RPC passes the macaroon check first (as lnd's interceptor does),
//! then the test hooks (delay, injected failure), then behaves like lnd's
//! `rpcserver.go` for the subset in `proto/lnrpc/lightning.proto`.

use std::collections::VecDeque;
use std::sync::{Arc, MutexGuard};

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::backup::{self, REGTEST_GENESIS};
use super::state::{Shared, State, chan_point_from_rpc, display_hex, rpc_chan_point, sat};
use crate::lnd::proto;

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
    pub(super) fn permission(self) -> (&'static str, &'static str) {
        match self {
            Rpc::GetInfo => ("info", "read"),
            Rpc::RestoreChannelBackups => ("offchain", "write"),
            _ => ("offchain", "read"),
        }
    }

    pub(super) fn full_method(self) -> String {
        format!("/lnrpc.Lightning/{}", self.name())
    }

    /// Accepts `GetInfo` or `/lnrpc.Lightning/GetInfo`.
    pub(crate) fn parse(name: &str) -> Option<Rpc> {
        let short = name.strip_prefix("/lnrpc.Lightning/").unwrap_or(name);
        Rpc::ALL.into_iter().find(|r| r.name() == short)
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
            self.shared.save(st);
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
    use crate::scb::ChanPoint;

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
