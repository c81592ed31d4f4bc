//! Published test vectors, shared by the escrow tests: BIP-39
//! (vectors.json), BIP-84 and lnd's aezeed tests.

/// BIP-39 vectors.json, entry 0 (and the BIP-84 test mnemonic).
pub const ABANDON: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon \
                       abandon abandon about";
/// BIP-39 vectors.json: the 128-bit entries 1-3.
pub const LEGAL: &str =
    "legal winner thank year wave sausage worth useful legal winner thank yellow";
pub const LETTER: &str =
    "letter advice cage absurd amount doctor acoustic avoid letter advice cage above";
pub const ZOO: &str = "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong";
/// BIP-39 vectors.json, 256-bit all-zero entropy: a valid 24-word mnemonic.
pub const ABANDON_24: &str = "abandon abandon abandon abandon abandon abandon abandon abandon \
    abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
    abandon abandon abandon abandon art";
/// BIP-39 vectors.json entry 0 with passphrase "TREZOR": the master xprv.
pub const TREZOR_MASTER_XPRV: &str = "xprv9s21ZrQH143K3h3fDYiay8mocZ3afhfULfb5GX8kCBdno77K4HiA15Tg23wpbeF1pLfs1c5SPmYHrEpTuuRhxMwvKDwqdKiGJS9XFKzUsAF";
/// BIP-84: account 0 of ABANDON (no passphrase), m/84'/0'/0', as published
/// (zpub) and the same key with standard version bytes.
pub const BIP84_ZPUB: &str = "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs";
pub const BIP84_XPUB: &str = "xpub6CatWdiZiodmUeTDp8LT5or8nmbKNcuyvz7WyksVFkKB4RHwCD3XyuvPEbvqAQY3rAPshWcMLoP2fMFMKHPJ4ZeZXYVUhLv1VMrjPC7PW6V";
/// Master fingerprint of ABANDON without passphrase (BIP-84/86 vectors,
/// e.g. `[73c5da0a/84'/0'/0']`).
pub const ABANDON_FP: &str = "73c5da0a";
/// lnd `aezeed/cipherseed_test.go`, `version0TestVectors[0]` (entropy
/// 81b637d8…, salt "salt1", default passphrase).
pub const LND_AEZEED: &str = "ability liquid travel stem barely drastic pact cupboard apple thrive \
    morning oak feature tissue couch old math inform success suggest drink motion know royal";
/// lnd `lnwallet/btcwallet/signer_test.go`: a real wallet seed (scrypt
/// N = 32768, default passphrase), and its node key m/1017'/1'/6'/0/0 on
/// regtest as WIF.
pub const LND_WALLET_AEZEED: &str = "able promote dizzy mixture sword myth share public find \
    tattoo catalog cousin bulb unfair machine alarm cool large promote kick shop rug mean year";
pub const LND_WALLET_NODE_WIF: &str = "cPeQdpcGJmLqpdmvokh3DK9ZtjYAXxiw4p4ELNUWkWt6bMRqArEV";
