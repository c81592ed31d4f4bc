//! What an item is, and the network it belongs to.

use std::fmt;
use std::str::FromStr;

use bitcoin::NetworkKind;

use super::error::{MaterialError, truncate_for_message};

/// What an item is. Parsed from and shown as the names used on the command
/// line and in the store (`bip39`, `aezeed`, `xprv`, `xpub`, `descriptor`,
/// `age-identity`, `lnd-backup-key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Bip39,
    Aezeed,
    Xprv,
    Xpub,
    Descriptor,
    AgeIdentity,
    /// lnd's channel-backup account key: the extended public key at
    /// m/1017'/coin'/7'. Public in form, secret in use: it opens every
    /// static channel backup of the node.
    LndBackupKey,
}

impl Kind {
    /// Every kind, in the order they are documented.
    pub const ALL: [Kind; 7] = [
        Kind::Bip39,
        Kind::Aezeed,
        Kind::Xprv,
        Kind::Xpub,
        Kind::Descriptor,
        Kind::AgeIdentity,
        Kind::LndBackupKey,
    ];

    /// Whether items of this kind carry a secret. `xpub` and `descriptor`
    /// are public (a descriptor with a private key is refused);
    /// `lnd-backup-key` is an xpub but reads the node's channel list and
    /// peers, so it is kept as a secret.
    pub fn is_secret(self) -> bool {
        !matches!(self, Kind::Xpub | Kind::Descriptor)
    }

    /// The name used on the command line and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bip39 => "bip39",
            Kind::Aezeed => "aezeed",
            Kind::Xprv => "xprv",
            Kind::Xpub => "xpub",
            Kind::Descriptor => "descriptor",
            Kind::AgeIdentity => "age-identity",
            Kind::LndBackupKey => "lnd-backup-key",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = MaterialError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| MaterialError::UnknownKind {
                given: truncate_for_message(s),
            })
    }
}

/// The Bitcoin network an item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Bitcoin,
    Testnet,
    Signet,
    Regtest,
}

impl Network {
    /// The key-serialisation network: `xpub`/`xprv` on mainnet, `tpub`/`tprv`
    /// on every test network (they cannot be told apart from the key).
    pub fn kind(self) -> NetworkKind {
        match self {
            Network::Bitcoin => NetworkKind::Main,
            _ => NetworkKind::Test,
        }
    }

    /// The `bitcoin` crate's network (for addresses and the like).
    pub fn bitcoin(self) -> bitcoin::Network {
        match self {
            Network::Bitcoin => bitcoin::Network::Bitcoin,
            Network::Testnet => bitcoin::Network::Testnet,
            Network::Signet => bitcoin::Network::Signet,
            Network::Regtest => bitcoin::Network::Regtest,
        }
    }

    /// BIP-44 coin type: 0 on mainnet, 1 on test networks.
    pub fn coin_type(self) -> u32 {
        match self {
            Network::Bitcoin => 0,
            _ => 1,
        }
    }

    /// The name used in config and metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Bitcoin => "mainnet",
            Network::Testnet => "testnet",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Network {
    type Err = MaterialError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mainnet" | "bitcoin" => Ok(Network::Bitcoin),
            "testnet" => Ok(Network::Testnet),
            "signet" => Ok(Network::Signet),
            "regtest" => Ok(Network::Regtest),
            _ => Err(MaterialError::UnknownNetwork {
                given: truncate_for_message(s),
            }),
        }
    }
}
