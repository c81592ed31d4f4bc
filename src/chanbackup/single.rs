//! One channel's static backup (lnd's `chanbackup.Single`), read strictly
//! from its plaintext (proto/NOTES.md §8 has the layout and its sources).
//!
//! `version (1) || body length L (u16) || body (L bytes)`. lnd itself reads
//! the body field by field and never looks at L; we read the fields from
//! exactly those L bytes and refuse a body that is shorter or longer than
//! its fields, so a misread layout shows up as an error, not as wrong data.

use bitcoin::Transaction;
use bitcoin::consensus::encode::deserialize_partial;
use bitcoin::secp256k1::PublicKey;

use super::address::{self, Address};
use super::wire::{Cursor, Kind, ParseError};
use crate::scb::ChanPoint;

/// Bit 7 of the version byte: CloseTxInputs follow the body (lnd >= 0.19).
pub const CLOSE_TX_INPUTS_BIT: u8 = 0x80;

/// The smallest body lnd can write: every fixed field, an empty address
/// list, no lease, no CloseTxInputs.
const MIN_BODY_LEN: usize = 1 + 32 + 34 + 8 + 33 + address::MIN_LIST_LEN + 8 // channel
    + 2 + 5 * 8 // local config
    + 2 + 5 * 33 // remote config
    + 33 + 8; // shachain root

/// The smallest serialized Single (version and length included); bounds the
/// channel count a Multi can honestly claim.
pub const MIN_SINGLE_LEN: usize = 3 + MIN_BODY_LEN;

/// The commitment format, from the Single's version byte (bit 7 cleared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelType {
    /// 0, `DefaultSingleVersion`: the original commitment format.
    Default,
    /// 1, `TweaklessCommitVersion`: static remote key.
    Tweakless,
    /// 2, `AnchorsCommitVersion`.
    Anchors,
    /// 3, `AnchorsZeroFeeHtlcTxCommitVersion`.
    AnchorsZeroFeeHtlcTx,
    /// 4, `ScriptEnforcedLeaseVersion`: adds the lease expiry.
    ScriptEnforcedLease,
    /// 5, `SimpleTaprootVersion`: MuSig2 taproot (staging).
    SimpleTaproot,
    /// 6, `TapscriptRootVersion`: taproot with a tapscript root (overlay).
    TapscriptRoot,
    /// 7, `SimpleTaprootFinalVersion`: production taproot (lnd master at the
    /// time of writing, read from a fork; proto/NOTES.md §8).
    SimpleTaprootFinal,
}

impl ChannelType {
    pub const ALL: [ChannelType; 8] = [
        ChannelType::Default,
        ChannelType::Tweakless,
        ChannelType::Anchors,
        ChannelType::AnchorsZeroFeeHtlcTx,
        ChannelType::ScriptEnforcedLease,
        ChannelType::SimpleTaproot,
        ChannelType::TapscriptRoot,
        ChannelType::SimpleTaprootFinal,
    ];

    /// From a version byte with bit 7 already cleared.
    pub fn from_version(v: u8) -> Option<Self> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// lnd's version number (0 to 7).
    pub fn version(self) -> u8 {
        self as u8
    }

    /// A short stable name, after lnd's version constants.
    pub fn name(self) -> &'static str {
        match self {
            ChannelType::Default => "default",
            ChannelType::Tweakless => "tweakless",
            ChannelType::Anchors => "anchors",
            ChannelType::AnchorsZeroFeeHtlcTx => "anchors-zero-fee-htlc-tx",
            ChannelType::ScriptEnforcedLease => "script-enforced-lease",
            ChannelType::SimpleTaproot => "simple-taproot",
            ChannelType::TapscriptRoot => "tapscript-root",
            ChannelType::SimpleTaprootFinal => "simple-taproot-final",
        }
    }

    /// lnd's `IsTaproot`: CloseTxInputs then carry a commit height.
    pub fn is_taproot(self) -> bool {
        matches!(
            self,
            ChannelType::SimpleTaproot
                | ChannelType::TapscriptRoot
                | ChannelType::SimpleTaprootFinal
        )
    }

    /// lnd's `HasTapscriptRoot`: CloseTxInputs then end with the root.
    pub fn has_tapscript_root(self) -> bool {
        self == ChannelType::TapscriptRoot
    }
}

/// Where lnd derives one of its own keys: m/1017'/coin'/family'/0/index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyLocator {
    pub family: u32,
    pub index: u32,
}

/// lnwire's short channel id: 3 bytes height, 3 bytes tx index, 2 bytes output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShortChannelId {
    pub block_height: u32,
    pub tx_index: u32,
    pub output_index: u16,
}

impl ShortChannelId {
    /// The u64 lncli prints as `chan_id`.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.block_height) << 40)
            | (u64::from(self.tx_index) << 16)
            | u64::from(self.output_index)
    }
}

/// Our side of the channel: only key locators are stored (we re-derive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalConfig {
    pub csv_delay: u16,
    pub multisig: KeyLocator,
    pub revocation_base: KeyLocator,
    pub payment_base: KeyLocator,
    pub delay_base: KeyLocator,
    pub htlc_base: KeyLocator,
}

/// The peer's side: their public keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteConfig {
    pub csv_delay: u16,
    pub multisig: PublicKey,
    pub revocation_base: PublicKey,
    pub payment_base: PublicKey,
    pub delay_base: PublicKey,
    pub htlc_base: PublicKey,
}

/// The shachain (revocation) root: a key locator, and for channels made by
/// old lnd a public point instead (written as 33 zero bytes when absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShachainRoot {
    pub pubkey: Option<PublicKey>,
    pub locator: KeyLocator,
}

/// What `chantools scbforceclose` needs (lnd >= 0.19, version bit 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseTxInputs {
    /// Our latest commitment transaction, unsigned by us.
    pub commit_tx: Transaction,
    /// The peer's signature for it.
    pub commit_sig: Vec<u8>,
    /// Taproot versions only.
    pub commit_height: Option<u64>,
    /// Version 6 (tapscript root) only.
    pub tapscript_root: Option<[u8; 32]>,
}

/// One channel's static backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Single {
    pub channel_type: ChannelType,
    pub is_initiator: bool,
    /// The chain's genesis hash, as lnd stores it (internal byte order).
    pub chain_hash: [u8; 32],
    /// Funding txid in internal (wire) byte order; see [`Single::chan_point`].
    pub funding_txid: [u8; 32],
    /// A u16 on the wire: lnwire cannot write a larger output index.
    pub funding_output_index: u16,
    pub short_channel_id: ShortChannelId,
    pub remote_node_pub: PublicKey,
    pub addresses: Vec<Address>,
    pub capacity_sat: u64,
    pub local: LocalConfig,
    pub remote: RemoteConfig,
    pub shachain_root: ShachainRoot,
    /// Version 4 (script-enforced lease) only.
    pub lease_expiry: Option<u32>,
    pub close_tx_inputs: Option<CloseTxInputs>,
}

impl Single {
    /// The funding outpoint; prints in display order, as lncli shows it.
    pub fn chan_point(&self) -> ChanPoint {
        ChanPoint {
            txid: self.funding_txid,
            index: u32::from(self.funding_output_index),
        }
    }

    /// Whether version bit 7 was set (force-close inputs included).
    pub fn has_close_tx_inputs(&self) -> bool {
        self.close_tx_inputs.is_some()
    }

    /// The version byte as lnd wrote it (bit 7 set with CloseTxInputs).
    pub fn version_byte(&self) -> u8 {
        let bit = if self.has_close_tx_inputs() {
            CLOSE_TX_INPUTS_BIT
        } else {
            0
        };
        self.channel_type.version() | bit
    }

    /// Parse the plaintext of one packed Single (`ChannelBackup.chan_backup`
    /// after decryption). Nothing may follow it.
    pub fn parse(plain: &[u8]) -> Result<Single, ParseError> {
        let mut c = Cursor::new(plain, Some(0));
        let single = read(&mut c)?;
        c.finish("after the single")?;
        Ok(single)
    }
}

fn pubkey(c: &mut Cursor<'_>, field: &'static str) -> Result<PublicKey, ParseError> {
    let bytes = c.array::<33>(field)?;
    PublicKey::from_slice(&bytes).map_err(|_| c.err(field, Kind::BadPubkey))
}

fn locator(c: &mut Cursor<'_>, field: &'static str) -> Result<KeyLocator, ParseError> {
    Ok(KeyLocator {
        family: c.u32(field)?,
        index: c.u32(field)?,
    })
}

/// Read one Single at the cursor: version, length, and exactly that body.
pub(super) fn read(c: &mut Cursor<'_>) -> Result<Single, ParseError> {
    let raw = c.u8("version")?;
    let channel_type = ChannelType::from_version(raw & !CLOSE_TX_INPUTS_BIT).ok_or_else(|| {
        c.err(
            "version",
            Kind::UnknownSingleVersion {
                version: raw & !CLOSE_TX_INPUTS_BIT,
                raw,
            },
        )
    })?;
    let len = usize::from(c.u16("length")?);
    let body = c.take(len, "body")?;
    let mut b = c.sub(body);
    let single = read_body(&mut b, channel_type, raw & CLOSE_TX_INPUTS_BIT != 0)?;
    b.finish("body (its length prefix is longer than its fields)")?;
    Ok(single)
}

fn read_body(
    b: &mut Cursor<'_>,
    channel_type: ChannelType,
    close_tx: bool,
) -> Result<Single, ParseError> {
    let is_initiator = b.bool("is_initiator")?;
    let chain_hash = b.array("chain_hash")?;
    let funding_txid = b.array("funding_outpoint.txid")?;
    let funding_output_index = b.u16("funding_outpoint.index")?;
    let scid = b.array::<8>("short_channel_id")?;
    let short_channel_id = ShortChannelId {
        block_height: u32::from_be_bytes([0, scid[0], scid[1], scid[2]]),
        tx_index: u32::from_be_bytes([0, scid[3], scid[4], scid[5]]),
        output_index: u16::from_be_bytes([scid[6], scid[7]]),
    };
    let remote_node_pub = pubkey(b, "remote_node_pub")?;
    let addresses = address::read_list(b)?;
    let capacity_sat = b.u64("capacity")?;
    let local = LocalConfig {
        csv_delay: b.u16("local.csv_delay")?,
        multisig: locator(b, "local.multisig_key")?,
        revocation_base: locator(b, "local.revocation_base")?,
        payment_base: locator(b, "local.payment_base")?,
        delay_base: locator(b, "local.delay_base")?,
        htlc_base: locator(b, "local.htlc_base")?,
    };
    let remote = RemoteConfig {
        csv_delay: b.u16("remote.csv_delay")?,
        multisig: pubkey(b, "remote.multisig_key")?,
        revocation_base: pubkey(b, "remote.revocation_base")?,
        payment_base: pubkey(b, "remote.payment_base")?,
        delay_base: pubkey(b, "remote.delay_base")?,
        htlc_base: pubkey(b, "remote.htlc_base")?,
    };
    let shachain_pub = b.array::<33>("shachain_root.pubkey")?;
    let shachain_root = ShachainRoot {
        pubkey: if shachain_pub == [0u8; 33] {
            None
        } else {
            Some(
                PublicKey::from_slice(&shachain_pub)
                    .map_err(|_| b.err("shachain_root.pubkey", Kind::BadPubkey))?,
            )
        },
        locator: locator(b, "shachain_root.key_locator")?,
    };
    let lease_expiry = match channel_type {
        ChannelType::ScriptEnforcedLease => Some(b.u32("lease_expiry")?),
        _ => None,
    };
    let close_tx_inputs = if close_tx {
        Some(read_close_tx_inputs(b, channel_type)?)
    } else {
        None
    };
    Ok(Single {
        channel_type,
        is_initiator,
        chain_hash,
        funding_txid,
        funding_output_index,
        short_channel_id,
        remote_node_pub,
        addresses,
        capacity_sat,
        local,
        remote,
        shachain_root,
        lease_expiry,
        close_tx_inputs,
    })
}

/// The commit tx in Bitcoin wire form (btcd `MsgTx.Deserialize`, which
/// rust-bitcoin's decoder matches, segwit marker included), the u16-prefixed
/// signature, then the taproot extras.
fn read_close_tx_inputs(
    b: &mut Cursor<'_>,
    channel_type: ChannelType,
) -> Result<CloseTxInputs, ParseError> {
    const TX: &str = "close_tx_inputs.commit_tx";
    let (commit_tx, used) = deserialize_partial::<Transaction>(b.peek_rest()).map_err(|e| {
        b.err(
            TX,
            Kind::BadTransaction(crate::text::one_line(&e.to_string())),
        )
    })?;
    b.take(used, TX)?;
    let sig_len = usize::from(b.u16("close_tx_inputs.commit_sig_length")?);
    let commit_sig = b.take(sig_len, "close_tx_inputs.commit_sig")?.to_vec();
    let commit_height = if channel_type.is_taproot() {
        Some(b.u64("close_tx_inputs.commit_height")?)
    } else {
        None
    };
    let tapscript_root = if channel_type.has_tapscript_root() {
        Some(b.array("close_tx_inputs.tapscript_root")?)
    } else {
        None
    };
    Ok(CloseTxInputs {
        commit_tx,
        commit_sig,
        commit_height,
        tapscript_root,
    })
}
