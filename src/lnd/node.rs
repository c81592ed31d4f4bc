//! What the node says about its channels and itself: the unary RPCs
//! beside the backup stream (`ListChannels`, `PendingChannels`,
//! `ClosedChannels`, `GetInfo`) and `RestoreChannelBackups`.

use std::collections::BTreeSet;

use super::{LndClient, LndError, proto};
use crate::scb::ChanPoint;

impl LndClient {
    /// The node's identity public key (`GetInfo`'s `identity_pubkey`, 66
    /// hex digits): the key the wallet's seed derives at m/1017'/coin'/6'/0/0.
    /// Needs `info:read`.
    pub async fn identity_pubkey(&self) -> Result<String, LndError> {
        let mut rpc = self.rpc.clone();
        let reply = self
            .unary(
                "GetInfo",
                "info:read",
                rpc.get_info(proto::GetInfoRequest::default()),
            )
            .await?;
        let key = reply.identity_pubkey;
        if key.len() == 66 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(key.to_ascii_lowercase())
        } else {
            Err(LndError::BadReply {
                rpc: "GetInfo",
                reason: format!(
                    "identity_pubkey is not a 33-byte hex key ({} characters)",
                    key.len()
                ),
            })
        }
    }

    /// Channel points LND reports as closed.
    pub async fn closed_channels(&self) -> Result<BTreeSet<ChanPoint>, LndError> {
        let mut rpc = self.rpc.clone();
        let reply = self
            .unary(
                "ClosedChannels",
                "offchain:read",
                rpc.closed_channels(proto::ClosedChannelsRequest::default()),
            )
            .await?;
        reply
            .channels
            .iter()
            .map(|c| {
                c.channel_point
                    .parse::<ChanPoint>()
                    .map_err(|e| LndError::BadReply {
                        rpc: "ClosedChannels",
                        reason: e.to_string(),
                    })
            })
            .collect()
    }

    /// Channel points of LND's open channels (`ListChannels`).
    pub async fn list_channels(&self) -> Result<BTreeSet<ChanPoint>, LndError> {
        let mut rpc = self.rpc.clone();
        let reply = self
            .unary(
                "ListChannels",
                "offchain:read",
                rpc.list_channels(proto::ListChannelsRequest::default()),
            )
            .await?;
        parse_points(
            "ListChannels",
            reply.channels.iter().map(|c| &c.channel_point),
        )
    }

    /// Channel points of LND's pending-open channels (`PendingChannels`); they
    /// are in lnd's channel backup too.
    pub async fn pending_channels(&self) -> Result<BTreeSet<ChanPoint>, LndError> {
        let mut rpc = self.rpc.clone();
        let reply = self
            .unary(
                "PendingChannels",
                "offchain:read",
                rpc.pending_channels(proto::PendingChannelsRequest::default()),
            )
            .await?;
        parse_points(
            "PendingChannels",
            reply
                .pending_open_channels
                .iter()
                .filter_map(|p| p.channel.as_ref().map(|c| &c.channel_point)),
        )
    }

    /// Every channel a backup must cover now: open plus pending-open.
    pub async fn current_channels(&self) -> Result<BTreeSet<ChanPoint>, LndError> {
        let mut all = self.list_channels().await?;
        all.extend(self.pending_channels().await?);
        Ok(all)
    }

    /// `RestoreChannelBackups` with a multi backup. lnd ≥ 0.19 answers with
    /// the number of channels restored; older versions with 0. Needs a
    /// macaroon with `offchain:write`.
    pub async fn restore_multi(&self, multi: &[u8]) -> Result<u32, LndError> {
        use proto::restore_chan_backup_request::Backup;
        let mut rpc = self.rpc.clone();
        let reply = self
            .unary(
                "RestoreChannelBackups",
                "offchain:write",
                rpc.restore_channel_backups(proto::RestoreChanBackupRequest {
                    backup: Some(Backup::MultiChanBackup(multi.to_vec())),
                }),
            )
            .await?;
        Ok(reply.num_restored)
    }
}

fn parse_points<'a>(
    rpc: &'static str,
    points: impl Iterator<Item = &'a String>,
) -> Result<BTreeSet<ChanPoint>, LndError> {
    points
        .map(|p| {
            p.parse::<ChanPoint>().map_err(|e| LndError::BadReply {
                rpc,
                reason: e.to_string(),
            })
        })
        .collect()
}
