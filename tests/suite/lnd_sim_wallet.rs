//! The simulator's aezeed wallet against the library: the words and
//! passphrase it writes open with `CipherSeed::decipher`, and the backups it
//! exports open with `chanbackup` keys derived from them (the simulator
//! derives its own keys separately, so this cross-checks both derivations).

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::{Network, NetworkKind};
use chanvault::chanbackup::{self, Address, BackupKey};
use chanvault::lnd::{LndClient, proto};
use chanvault::scb::ChanPoint;
use chanvault::sim::{SimOptions, Simulator};
use chanvault::wallet::aezeed::{CipherSeed, Mnemonic, SeedError};
use zeroize::Zeroizing;

use crate::lnd_sim::raw;

const PASSPHRASE: &str = "correct horse battery staple";

async fn start() -> (tempfile::TempDir, Simulator) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SimOptions::new(dir.path().join("lnd"));
    opts.aezeed_passphrase = Some(Zeroizing::new(PASSPHRASE.to_string()));
    assert!(!format!("{opts:?}").contains(PASSPHRASE));
    let sim = Simulator::start(opts).await.unwrap();
    (dir, sim)
}

fn mnemonic(sim: &Simulator) -> Mnemonic {
    let words = Zeroizing::new(std::fs::read_to_string(sim.aezeed_path()).unwrap());
    words.parse().unwrap()
}

fn seed(sim: &Simulator) -> CipherSeed {
    let pass = Zeroizing::new(std::fs::read_to_string(sim.aezeed_passphrase_path()).unwrap());
    assert_eq!(pass.trim_end(), PASSPHRASE);
    CipherSeed::decipher(&mnemonic(sim), pass.trim_end().as_bytes()).unwrap()
}

/// Channel point → peer pubkey, as ListChannels reports them.
pub(crate) async fn peers(sim: &Simulator) -> BTreeMap<ChanPoint, String> {
    let mut rpc = raw::client(sim, &sim.readonly_macaroon_path()).await;
    let list = rpc
        .list_channels(proto::ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    list.channels
        .iter()
        .map(|c| (c.channel_point.parse().unwrap(), c.remote_pubkey.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_multi_opens_with_keys_from_the_seed_and_the_xpub() {
    let (_dir, sim) = start().await;
    sim.open_channels_batch(60);
    let seed = seed(&sim);
    let mut master = seed.master_key(Network::Regtest).unwrap();
    let from_seed = BackupKey::from_master(&master).unwrap();
    master.private_key.non_secure_erase();
    let xpub = sim.backup_account_xpub();
    assert!(xpub.starts_with("tpub"), "regtest prints a tpub");
    assert_eq!(
        seed.backup_account_xpub(Network::Regtest)
            .unwrap()
            .to_string(),
        xpub
    );
    let from_xpub = BackupKey::from_account_xpub(&xpub, NetworkKind::Test).unwrap();
    assert_eq!(from_seed.fingerprint(), from_xpub.fingerprint());

    let client = LndClient::connect(&sim.lnd_settings(&sim.readonly_macaroon_path()))
        .await
        .unwrap();
    let blob = client.export_all().await.unwrap().multi;
    let want = peers(&sim).await;
    assert_eq!(
        want.keys().copied().collect::<BTreeSet<_>>(),
        sim.channels()
    );
    for key in [&from_seed, &from_xpub] {
        let multi = chanbackup::open_multi(key, &blob).unwrap();
        let got: BTreeMap<ChanPoint, String> = multi
            .singles
            .iter()
            .map(|s| (s.chan_point(), s.remote_node_pub.to_string()))
            .collect();
        assert_eq!(got.len(), multi.singles.len(), "no duplicates");
        assert_eq!(got, want);
    }

    // 60 peers: every kind of address list shows up (each has p >= 0.2).
    let multi = chanbackup::open_multi(&from_seed, &blob).unwrap();
    let lists: Vec<&Vec<Address>> = multi.singles.iter().map(|s| &s.addresses).collect();
    let any = |f: fn(&Address) -> bool| lists.iter().any(|l| l.iter().any(f));
    assert!(
        lists.iter().any(|l| l.is_empty()),
        "a peer without addresses"
    );
    assert!(any(|a| matches!(a, Address::Ipv4 { .. })));
    assert!(any(|a| matches!(a, Address::Ipv6 { .. })));
    assert!(any(
        |a| matches!(a, Address::OnionV3 { key, .. } if key[34] == 3)
    ));
    // Each channel reads back as the version and CloseTxInputs the
    // simulator wrote; 60 draws over versions 0 to 7, about half with
    // CloseTxInputs, show several versions and both cases.
    let got: BTreeMap<ChanPoint, (u8, bool)> = multi
        .singles
        .iter()
        .map(|s| {
            let kind = (s.channel_type.version(), s.has_close_tx_inputs());
            (s.chan_point(), kind)
        })
        .collect();
    let written: BTreeMap<ChanPoint, (u8, bool)> = sim
        .channel_kinds()
        .into_iter()
        .map(|(cp, k)| (cp, (k.version, k.close_tx_inputs)))
        .collect();
    assert_eq!(got, written);
    let versions: BTreeSet<u8> = got.values().map(|k| k.0).collect();
    assert!(versions.len() >= 4, "{versions:?}");
    let closes: BTreeSet<bool> = got.values().map(|k| k.1).collect();
    assert_eq!(closes.len(), 2, "with and without CloseTxInputs");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_key_is_the_seeds_node_key() {
    let (_dir, sim) = start().await;
    let node = seed(&sim).node_pubkey(Network::Regtest).unwrap();
    assert_eq!(sim.node_pubkey(), node);
    assert_eq!(sim.identity_pubkey(), node.to_string());
    let mut rpc = raw::client(&sim, &sim.readonly_macaroon_path()).await;
    let info = rpc
        .get_info(proto::GetInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.identity_pubkey, node.to_string());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_files_are_secret_and_need_their_passphrase() {
    let (_dir, sim) = start().await;
    assert_eq!(
        CipherSeed::decipher(&mnemonic(&sim), b"wrong passphrase").unwrap_err(),
        SeedError::WrongPassphrase
    );
    // Empty means lnd's default "aezeed", which is not this seed's either.
    assert_eq!(
        CipherSeed::decipher(&mnemonic(&sim), b"").unwrap_err(),
        SeedError::WrongPassphrase
    );
    let dir = sim.dir().to_path_buf();
    let pubkey = sim.node_pubkey();
    sim.stop().await;
    drop(sim);
    // A restart with no passphrase given reads the stored one; another one
    // is refused rather than silently making a different node.
    let again = Simulator::start(SimOptions::new(&dir)).await.unwrap();
    assert_eq!(again.node_pubkey(), pubkey);
    again.stop().await;
    drop(again);
    let mut other = SimOptions::new(&dir);
    other.aezeed_passphrase = Some(Zeroizing::new("another".to_string()));
    let err = Simulator::start(other).await.unwrap_err().to_string();
    assert!(err.contains("aezeed-passphrase.txt"), "{err}");
    assert!(
        !err.contains(PASSPHRASE) && !err.contains("another"),
        "{err}"
    );
}
