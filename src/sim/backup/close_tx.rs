//! lnd's `CloseTxInputs` (chanbackup/single.go, lnd >= 0.19): what a Single
//! carries when bit 7 of its version byte is set, so that `chantools
//! scbforceclose` can sign and broadcast our latest commitment transaction.
//! lnd appends it to the body after the other fields: the commit tx in
//! Bitcoin wire form (btcd `MsgTx.Serialize`), the u16-prefixed signature,
//! then for taproot versions (5, 6, 7) the u64 commit height, then for
//! version 6 the 32-byte tapscript root (proto/NOTES.md §8).

use bitcoin::consensus::encode::{self, deserialize_partial, serialize};
use bitcoin::hashes::{Hash, sha256d};
use bitcoin::secp256k1::{Message, SecretKey};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use rand::Rng;

use super::{GoReader, TAPSCRIPT_ROOT_VERSION, is_taproot, random_pubkey, random_secret, secp};

/// `lnwire.PartialSigWithNonceLen`: what lnd stores as the commit sig of a
/// taproot channel, the peer's MuSig2 partial signature (32 bytes) followed
/// by its public nonce (two compressed points, 66 bytes).
pub(crate) const PARTIAL_SIG_WITH_NONCE_LEN: usize = 98;
/// `AnchorsCommitVersion`: from here on commitments carry two anchors.
const FIRST_ANCHORS_VERSION: u8 = 2;
/// BOLT 3 anchor output value.
const ANCHOR_SAT: u64 = 330;
/// Outputs below lnd's default dust limit are trimmed from the commitment.
const DUST_LIMIT_SAT: u64 = 354;
/// BOLT 3: the obscured commitment number is 48 bits, its upper half in the
/// input's sequence (under 0x80) and its lower half in the lock time (under
/// 0x20).
const SEQUENCE_PREFIX: u32 = 0x8000_0000;
const LOCK_TIME_PREFIX: u32 = 0x2000_0000;
const HALF_MASK: u64 = 0xff_ffff;
const OBSCURED_MASK: u64 = 0xffff_ffff_ffff;

/// lnd's `chanbackup.CloseTxInputs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CloseTxInputs {
    /// Our latest commitment, unsigned by us (so written without witness).
    pub commit_tx: Transaction,
    /// The peer's signature for it as lnd stores it: DER-encoded ECDSA, or
    /// for taproot versions a partial signature with its nonce (98 bytes).
    pub commit_sig: Vec<u8>,
    /// Written for taproot versions only; lnd fills it only for them.
    pub commit_height: u64,
    /// Required for version 6, absent for every other version.
    pub tapscript_root: Option<[u8; 32]>,
}

impl CloseTxInputs {
    /// Inputs as lnd's `buildCloseTxInputs` takes them from the channel's
    /// local commitment: a commitment transaction spending `funding` in
    /// BOLT 3's shape for `version` (sequence and lock time hiding the
    /// commitment number, two anchors from version 2 on, P2TR outputs for
    /// taproot, BIP 69 order), and the peer's signature. The output scripts
    /// hold random hashes and keys, and the ECDSA signature, made with the
    /// peer's funding key `remote_funding`, covers a stand-in digest rather
    /// than the BIP 143 sighash (our funding key is not derived here).
    pub(crate) fn random(
        rng: &mut impl Rng,
        version: u8,
        funding: OutPoint,
        capacity_sat: u64,
        remote_funding: &SecretKey,
    ) -> Self {
        let height = rng.gen_range(0..100_000u64);
        let commit_tx = commit_tx(rng, version, funding, capacity_sat, height);
        let commit_sig = if is_taproot(version) {
            let mut sig = Vec::with_capacity(PARTIAL_SIG_WITH_NONCE_LEN);
            sig.extend_from_slice(&random_secret(rng).secret_bytes());
            sig.extend_from_slice(&random_pubkey(rng));
            sig.extend_from_slice(&random_pubkey(rng));
            sig
        } else {
            let digest = sha256d::Hash::hash(&serialize(&commit_tx));
            let msg = Message::from_digest(digest.to_byte_array());
            secp()
                .sign_ecdsa(&msg, remote_funding)
                .serialize_der()
                .to_vec()
        };
        CloseTxInputs {
            commit_tx,
            commit_sig,
            commit_height: if is_taproot(version) { height } else { 0 },
            tapscript_root: (version == TAPSCRIPT_ROOT_VERSION).then(|| rng.r#gen()),
        }
    }

    /// Append to a Single's body as lnd's `Single.Serialize` does, for
    /// `version` with bit 7 cleared; lnd's error texts.
    pub(crate) fn write(&self, version: u8, out: &mut Vec<u8>) -> Result<(), String> {
        let failed = |e: &str| format!("failed to encode CloseTxInputs: {e}");
        out.extend_from_slice(&serialize(&self.commit_tx));
        let sig_len =
            u16::try_from(self.commit_sig.len()).map_err(|_| failed("commit sig too long"))?;
        out.extend_from_slice(&sig_len.to_be_bytes());
        out.extend_from_slice(&self.commit_sig);
        if is_taproot(version) {
            out.extend_from_slice(&self.commit_height.to_be_bytes());
            if version == TAPSCRIPT_ROOT_VERSION {
                let root = self
                    .tapscript_root
                    .ok_or_else(|| failed("field TapscriptRoot is not filled"))?;
                out.extend_from_slice(&root);
            }
        }
        Ok(())
    }

    /// Read them back as lnd's `Single.Deserialize` does, for `version` with
    /// bit 7 cleared.
    pub(crate) fn read(b: &mut GoReader<'_>, version: u8) -> Result<Self, String> {
        let commit_tx = read_tx(b)?;
        let sig_len = b.u16()?;
        let commit_sig = b.bytes(usize::from(sig_len))?.to_vec();
        let commit_height = if is_taproot(version) { b.u64()? } else { 0 };
        let tapscript_root = if version == TAPSCRIPT_ROOT_VERSION {
            Some(b.array::<32>()?)
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
}

/// btcd's `MsgTx.Deserialize` at the reader: Go's `EOF` and `unexpected
/// EOF` where lnd would say them; rust-bitcoin's text for other malformed
/// transactions (btcd's own texts are not reproduced).
fn read_tx(b: &mut GoReader<'_>) -> Result<Transaction, String> {
    let rest = b.peek_rest();
    if rest.is_empty() {
        return Err("EOF".into());
    }
    match deserialize_partial::<Transaction>(rest) {
        Ok((tx, used)) => {
            b.bytes(used)?;
            Ok(tx)
        }
        Err(encode::Error::Io(e)) if e.kind() == bitcoin::io::ErrorKind::UnexpectedEof => {
            Err("unexpected EOF".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A witness program of `len` random bytes behind `version_op` (OP_0 for
/// P2WPKH and P2WSH, OP_1 for P2TR).
fn program(rng: &mut impl Rng, version_op: u8, len: u8) -> ScriptBuf {
    let mut bytes = vec![version_op, len];
    bytes.extend((0..len).map(|_| rng.r#gen::<u8>()));
    ScriptBuf::from_bytes(bytes)
}

/// The commitment transaction lnd keeps as its local commitment, before we
/// sign it: version 2, one input spending the funding outpoint with the
/// obscured commitment number split over sequence and lock time, our and
/// the peer's balances (each trimmed below the dust limit) with an anchor
/// for each side that has one from version 2 on, in BIP 69 order.
fn commit_tx(
    rng: &mut impl Rng,
    version: u8,
    funding: OutPoint,
    capacity_sat: u64,
    height: u64,
) -> Transaction {
    let obscured = (height ^ rng.r#gen::<u64>()) & OBSCURED_MASK;
    let anchors = version >= FIRST_ANCHORS_VERSION;
    let taproot = is_taproot(version);
    let fee = rng.gen_range(300..3_000u64);
    let reserved = fee + if anchors { 2 * ANCHOR_SAT } else { 0 };
    let spendable = capacity_sat.saturating_sub(reserved);
    let ours = rng.gen_range(0..=spendable);
    let mut output = Vec::with_capacity(4);
    for (value, to_local) in [(ours, true), (spendable - ours, false)] {
        if value < DUST_LIMIT_SAT {
            continue;
        }
        let script_pubkey = match (taproot, anchors, to_local) {
            (true, _, _) => program(rng, 0x51, 32),
            // Before anchors the peer's output pays straight to its key.
            (false, false, false) => program(rng, 0x00, 20),
            (false, _, _) => program(rng, 0x00, 32),
        };
        output.push(TxOut {
            value: Amount::from_sat(value),
            script_pubkey,
        });
        if anchors {
            output.push(TxOut {
                value: Amount::from_sat(ANCHOR_SAT),
                script_pubkey: program(rng, if taproot { 0x51 } else { 0x00 }, 32),
            });
        }
    }
    output.sort_by(|a, b| {
        (a.value, a.script_pubkey.as_bytes()).cmp(&(b.value, b.script_pubkey.as_bytes()))
    });
    // Both halves are masked to 24 bits, so the casts cannot truncate.
    let upper = ((obscured >> 24) & HALF_MASK) as u32;
    let lower = (obscured & HALF_MASK) as u32;
    Transaction {
        version: Version::TWO,
        lock_time: bitcoin::absolute::LockTime::from_consensus(LOCK_TIME_PREFIX | lower),
        input: vec![TxIn {
            previous_output: funding,
            script_sig: ScriptBuf::new(),
            sequence: Sequence(SEQUENCE_PREFIX | upper),
            witness: Witness::new(),
        }],
        output,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bitcoin::secp256k1::ecdsa::Signature;
    use bitcoin::secp256k1::{PublicKey, Secp256k1};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::super::{
        CLOSE_TX_INPUTS_BIT, MAX_SINGLE_VERSION, Single, pack_multi, pack_single, unpack_multi,
        unpack_single,
    };
    use super::*;

    const KEY: [u8; 32] = [9u8; 32];

    /// Versions 0 to 7, each without and with CloseTxInputs.
    fn every_kind() -> Vec<(u8, bool)> {
        (0..=MAX_SINGLE_VERSION)
            .flat_map(|v| [(v, false), (v, true)])
            .collect()
    }

    /// What lnd appends after the other fields, written out by hand.
    fn expected_trailer(version: u8, c: &CloseTxInputs) -> Vec<u8> {
        let mut want = serialize(&c.commit_tx);
        want.extend_from_slice(&(c.commit_sig.len() as u16).to_be_bytes());
        want.extend_from_slice(&c.commit_sig);
        if is_taproot(version) {
            want.extend_from_slice(&c.commit_height.to_be_bytes());
        }
        if let Some(root) = c.tapscript_root {
            want.extend_from_slice(&root);
        }
        want
    }

    #[test]
    fn every_version_round_trips_with_and_without_close_tx_inputs() {
        let mut rng = StdRng::seed_from_u64(7);
        for (i, (v, close)) in every_kind().into_iter().enumerate() {
            let s = Single::random_of(&mut rng, i as u32, 600 + i as u32, v, close);
            let bytes = s.serialize().unwrap();
            let bit = if close { CLOSE_TX_INPUTS_BIT } else { 0 };
            assert_eq!(bytes[0], v | bit, "version {v} close {close}");
            assert_eq!(s.version_byte(), v | bit);
            let body_len = usize::from(u16::from_be_bytes([bytes[1], bytes[2]]));
            assert_eq!(bytes.len(), 3 + body_len);
            assert_eq!(
                Single::parse(&bytes).unwrap(),
                s,
                "version {v} close {close}"
            );
            assert_eq!(
                unpack_single(&KEY, &pack_single(&KEY, &s).unwrap()).unwrap(),
                s
            );
            assert_eq!(s.lease_expiry.is_some(), v == 4);
            // The inputs follow the fields a Single without them has.
            let mut without = s.clone();
            without.close_tx_inputs = None;
            without.version = v;
            let plain = without.serialize().unwrap();
            assert_eq!(bytes[3..plain.len()], plain[3..]);
            let trailer = &bytes[plain.len()..];
            match &s.close_tx_inputs {
                None => assert!(!close && trailer.is_empty()),
                Some(c) => {
                    assert!(close);
                    assert_eq!(trailer, expected_trailer(v, c).as_slice());
                    if !is_taproot(v) {
                        assert_eq!(c.commit_height, 0, "lnd fills it for taproot only");
                    }
                    assert_eq!(c.tapscript_root.is_some(), v == TAPSCRIPT_ROOT_VERSION);
                }
            }
        }
    }

    #[test]
    fn commitments_look_like_lnds() {
        let mut rng = StdRng::seed_from_u64(11);
        for (i, (v, _)) in every_kind().into_iter().enumerate().filter(|(_, k)| k.1) {
            let s = Single::random_of(&mut rng, i as u32, 700, v, true);
            let c = s.close_tx_inputs.as_ref().unwrap();
            let tx = &c.commit_tx;
            assert_eq!(tx.version, Version::TWO);
            assert_eq!(tx.input.len(), 1);
            let input = &tx.input[0];
            assert_eq!(input.previous_output.txid.to_byte_array(), s.txid);
            assert_eq!(input.previous_output.vout, u32::from(s.output_index));
            assert!(input.script_sig.is_empty() && input.witness.is_empty());
            assert_eq!(input.sequence.0 >> 24, 0x80);
            assert_eq!(tx.lock_time.to_consensus_u32() >> 24, 0x20);
            // Unsigned: the legacy form, as btcd writes a tx without witness.
            assert_ne!(serialize(tx)[4], 0, "no segwit marker");
            let total: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
            assert!(total < s.capacity_sat && total > s.capacity_sat - 4_000);
            let values: Vec<u64> = tx.output.iter().map(|o| o.value.to_sat()).collect();
            assert!(
                values.windows(2).all(|w| w[0] <= w[1]),
                "BIP 69: {values:?}"
            );
            let anchors = values.iter().filter(|&&x| x == ANCHOR_SAT).count();
            assert_eq!(anchors > 0, v >= FIRST_ANCHORS_VERSION, "version {v}");
            for o in &tx.output {
                let spk = &o.script_pubkey;
                assert!(spk.is_p2tr() == is_taproot(v), "version {v}: {spk:?}");
                assert!(spk.is_p2tr() || spk.is_p2wsh() || spk.is_p2wpkh());
            }
            if is_taproot(v) {
                assert_eq!(c.commit_sig.len(), PARTIAL_SIG_WITH_NONCE_LEN);
                let nonces = &c.commit_sig[32..];
                assert!(PublicKey::from_slice(&nonces[..33]).is_ok());
                assert!(PublicKey::from_slice(&nonces[33..]).is_ok());
            } else {
                // DER, low S, by the peer's funding key.
                let sig = Signature::from_der(&c.commit_sig).unwrap();
                assert!((68..=72).contains(&c.commit_sig.len()));
                let mut low = sig;
                low.normalize_s();
                assert_eq!(low, sig);
                let digest = sha256d::Hash::hash(&serialize(tx));
                let msg = Message::from_digest(digest.to_byte_array());
                let peer = PublicKey::from_slice(&s.remote_keys[0]).unwrap();
                assert!(
                    Secp256k1::verification_only()
                        .verify_ecdsa(&msg, &sig, &peer)
                        .is_ok()
                );
            }
        }
    }

    #[test]
    fn random_mixes_every_version_with_and_without_close_tx_inputs() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut seen: BTreeMap<(u8, bool), usize> = BTreeMap::new();
        for i in 0..600 {
            let s = Single::random(&mut rng, i, 500 + i);
            let kind = (
                s.version & !CLOSE_TX_INPUTS_BIT,
                s.close_tx_inputs.is_some(),
            );
            assert_eq!(kind.1, s.version & CLOSE_TX_INPUTS_BIT != 0);
            *seen.entry(kind).or_default() += 1;
        }
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), every_kind());
        let per_version = |v: u8| seen[&(v, false)] + seen[&(v, true)];
        for v in (0..=MAX_SINGLE_VERSION).filter(|&v| v != 3) {
            assert!(per_version(3) > 2 * per_version(v), "{seen:?}");
        }
        let with: usize = seen.iter().filter(|(k, _)| k.1).map(|(_, n)| n).sum();
        assert!(
            (200..400).contains(&with),
            "{with} of 600 with CloseTxInputs"
        );
    }

    #[test]
    fn a_multi_of_every_kind_round_trips() {
        let mut rng = rand::thread_rng();
        let ss: Vec<Single> = every_kind()
            .into_iter()
            .enumerate()
            .map(|(i, (v, c))| Single::random_of(&mut rng, i as u32, 800, v, c))
            .collect();
        let refs: Vec<&Single> = ss.iter().collect();
        let mut got = unpack_multi(&KEY, &pack_multi(&KEY, &refs).unwrap()).unwrap();
        let mut want = ss.clone();
        got.sort_by_key(|s| s.txid);
        want.sort_by_key(|s| s.txid);
        assert_eq!(got, want);
    }

    #[test]
    fn errors_are_lnds_texts() {
        let mut rng = rand::thread_rng();
        let mut s = Single::random_of(&mut rng, 0, 500, TAPSCRIPT_ROOT_VERSION, true);
        if let Some(c) = s.close_tx_inputs.as_mut() {
            c.tapscript_root = None;
        }
        assert_eq!(
            s.serialize().unwrap_err(),
            "failed to encode CloseTxInputs: field TapscriptRoot is not filled"
        );
        // Bit 7 with nothing after the fields, a cut transaction, a cut
        // signature, a missing commit height.
        let mut bare = Single::random_of(&mut rng, 0, 500, 5, false);
        bare.version |= CLOSE_TX_INPUTS_BIT;
        let full = Single::random_of(&mut rng, 0, 500, 5, true);
        let c = full.close_tx_inputs.clone().unwrap();
        let tx = serialize(&c.commit_tx);
        let sig_len = (c.commit_sig.len() as u16).to_be_bytes();
        let cases: [(Vec<u8>, &str); 4] = [
            (vec![], "EOF"),
            (tx[..tx.len() - 3].to_vec(), "unexpected EOF"),
            (
                [&tx[..], &sig_len[..], &c.commit_sig[..10]].concat(),
                "unexpected EOF",
            ),
            ([&tx[..], &sig_len[..], &c.commit_sig[..]].concat(), "EOF"),
        ];
        for (trailer, want) in cases {
            bare.trailer = trailer;
            let bytes = bare.serialize().unwrap();
            assert_eq!(Single::parse(&bytes).unwrap_err(), want);
        }
    }
}
