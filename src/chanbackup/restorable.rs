//! What could stop lnd from restoring a channel it finds in a backup, per
//! Single: warnings that do not make the backup wrong, but make a recovery
//! from it less certain. `verify` shows and exports them.
//!
//! The lnd release that first reads each Single version is taken from lnd's
//! release notes (see `proto/NOTES.md` §8); where a release was not certain
//! the later one is used, so a warning may be early but is never missed.

use std::fmt;
use std::str::FromStr;

use super::address::Address;
use super::single::{ChannelType, Single};

/// An lnd release, `MAJOR.MINOR.PATCH` (a leading `v` and a `-beta…`
/// suffix are accepted, as `lncli version` prints them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LndVersion(pub u16, pub u16, pub u16);

impl fmt::Display for LndVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl FromStr for LndVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not an lnd version (expected e.g. \"0.18.5\")");
        let core = s.trim().trim_start_matches('v');
        let core = core.split('-').next().unwrap_or_default();
        let mut parts = core.split('.').map(|p| p.parse::<u16>().map_err(|_| bad()));
        let major = parts.next().ok_or_else(bad)??;
        let minor = parts.next().ok_or_else(bad)??;
        let patch = parts.next().transpose()?.unwrap_or(0);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(LndVersion(major, minor, patch))
    }
}

/// The first lnd release that restores a Single of this type.
pub fn first_lnd_reading(t: ChannelType) -> LndVersion {
    match t {
        ChannelType::Default => LndVersion(0, 6, 0),
        ChannelType::Tweakless => LndVersion(0, 8, 0),
        ChannelType::Anchors => LndVersion(0, 11, 0),
        ChannelType::AnchorsZeroFeeHtlcTx => LndVersion(0, 12, 0),
        ChannelType::ScriptEnforcedLease => LndVersion(0, 14, 0),
        ChannelType::SimpleTaproot => LndVersion(0, 17, 0),
        ChannelType::TapscriptRoot => LndVersion(0, 19, 0),
        ChannelType::SimpleTaprootFinal => LndVersion(0, 21, 0),
    }
}

/// The first lnd release that reads the close-tx-inputs bit; older ones
/// refuse the Single's version byte, and with it the whole backup.
pub const FIRST_LND_READING_CLOSE_TX_INPUTS: LndVersion = LndVersion(0, 19, 0);

/// What may go wrong restoring one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Concern {
    /// The peer has no address: lnd cannot connect to ask it to force-close.
    NoAddress,
    /// Only Tor v2 addresses, which Tor and lnd 0.21 no longer use.
    TorV2Only,
    /// The configured lnd release is older than the one that reads this
    /// Single.
    NeedsNewerLnd,
    /// No close-tx inputs: `chantools scbforceclose` cannot force-close it
    /// if the peer never comes back.
    NoCloseTxInputs,
}

impl Concern {
    pub fn as_str(self) -> &'static str {
        match self {
            Concern::NoAddress => "no-address",
            Concern::TorV2Only => "tor-v2-only",
            Concern::NeedsNewerLnd => "needs-newer-lnd",
            Concern::NoCloseTxInputs => "no-close-tx-inputs",
        }
    }
}

/// Every concern about restoring `s` with `lnd` (the release a recovery
/// would use, when known), each with a one-line explanation.
pub fn concerns(s: &Single, lnd: Option<LndVersion>) -> Vec<(Concern, String)> {
    let mut out = Vec::new();
    let peer = s.remote_node_pub;
    if s.addresses.is_empty() {
        let why = format!("peer {peer} has no address: lnd cannot reach it to recover the funds");
        out.push((Concern::NoAddress, why));
    } else if s
        .addresses
        .iter()
        .all(|a| matches!(a, Address::OnionV2 { .. }))
    {
        let why = format!(
            "peer {peer} is known only by Tor v2 addresses, which Tor no longer serves and lnd 0.21 skips"
        );
        out.push((Concern::TorV2Only, why));
    }
    if let Some(lnd) = lnd {
        let mut need = first_lnd_reading(s.channel_type);
        if s.has_close_tx_inputs() {
            need = need.max(FIRST_LND_READING_CLOSE_TX_INPUTS);
        }
        if lnd < need {
            let what = if s.has_close_tx_inputs() {
                format!(
                    "the {} channel type with close-tx inputs",
                    s.channel_type.name()
                )
            } else {
                format!("the {} channel type", s.channel_type.name())
            };
            let why = format!(
                "{what} needs lnd {need} or later to restore; verify.restore_lnd_version is {lnd}"
            );
            out.push((Concern::NeedsNewerLnd, why));
        }
    }
    if !s.has_close_tx_inputs() {
        let why = "no close-tx inputs (lnd < 0.19 wrote it): if the peer never returns, it cannot be force-closed from the backup".to_string();
        out.push((Concern::NoCloseTxInputs, why));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_lncli_prints_them() {
        let v: LndVersion = "v0.18.5-beta commit=v0.18.5-beta"
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(v, LndVersion(0, 18, 5));
        assert_eq!("0.19".parse::<LndVersion>().unwrap(), LndVersion(0, 19, 0));
        assert!(LndVersion(0, 9, 0) < LndVersion(0, 18, 0));
        for bad in ["", "0", "0.x.1", "1.2.3.4", "latest"] {
            let e = bad.parse::<LndVersion>().unwrap_err();
            assert!(e.contains("not an lnd version"), "{e}");
        }
    }

    #[test]
    fn later_types_need_later_releases() {
        let all = ChannelType::ALL.map(first_lnd_reading);
        assert!(all.windows(2).all(|w| w[0] <= w[1]), "{all:?}");
    }
}
