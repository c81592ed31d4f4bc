//! The floor under one isolated event: each step chanvault cannot skip,
//! timed alone while nothing else runs (the agent idle between rows), at the
//! row's channel count and sealed size. The row's measured latency against
//! their sum is how far above the machine's floor chanvault is.

use std::path::Path;
use std::time::{Duration, Instant};

use chanvault::lnd::LndClient;
use chanvault::seal::Recipients;

use super::{BenchResult, Setup, pct};

/// Samples per step; the p50 of each is reported.
const SAMPLES: usize = 15;

/// The requests of a delivery that wait for each other: the config's check
/// beside the snapshot listing, our lock, the others' locks, the tree pack
/// beside the data pack (whose upload is timed apart), the index, the
/// snapshot, our lock's removal.
pub const REQUESTS_IN_A_ROW: f64 = 6.0;

/// p50 of each step, in ms.
pub struct Floor {
    /// `VerifyChanBackup` of the row's multi: the simulated LND's work and
    /// one round trip on the open TLS connection.
    pub verify: f64,
    /// `ExportAllChannelBackups`: the same snapshot LND streams, packed and
    /// sent; less LND's packing (the row's "before the hand-off"), the
    /// stream's transfer.
    pub export: f64,
    /// age seal, and the sealed file written under its temp name and
    /// fsynced: beside the verify, so only what exceeds it counts.
    pub seal_write: f64,
    /// The sealed file renamed into place and its directory fsynced.
    pub commit: f64,
    /// The journal (its size now) written under its temp name and fsynced:
    /// beside the commit, so only what exceeds it counts.
    pub journal_write: f64,
    /// The journal's temp file renamed into place and its directory fsynced.
    pub journal_commit: f64,
    /// One request to the REST server (`HEAD /config`); a delivery makes 9,
    /// [`REQUESTS_IN_A_ROW`] of them one after the other.
    pub rtt: f64,
    /// The data pack's upload (`POST /data/<id>`, the sealed size).
    pub upload: f64,
    /// SHA-256 of the sealed bytes twice (the blob's id and the pack's name;
    /// restic's AES-CTR and Poly1305 are left out: a floor, not an estimate).
    pub hashes: f64,
}

impl Floor {
    /// Hand-off to offsite when every step runs once, in order, alone,
    /// without the stream.
    pub fn sum(&self) -> f64 {
        self.verify.max(self.seal_write)
            + self.commit.max(self.journal_write)
            + self.journal_commit
            + REQUESTS_IN_A_ROW * self.rtt
            + self.upload
            + self.hashes
    }
}

/// p50 (ms) of the time `f` says it spent: steps that need set-up first
/// time only their own part.
fn p50_of(mut f: impl FnMut() -> BenchResult<Duration>) -> BenchResult<f64> {
    let mut v = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        v.push(f()?.as_secs_f64() * 1e3);
    }
    Ok(pct(&mut v, 0.5))
}

fn time_p50(mut f: impl FnMut() -> BenchResult<()>) -> BenchResult<f64> {
    p50_of(|| {
        let t = Instant::now();
        f()?;
        Ok(t.elapsed())
    })
}

async fn time_p50_async<F: Future<Output = BenchResult<()>>>(
    mut f: impl FnMut() -> F,
) -> BenchResult<f64> {
    let mut v = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        f().await?;
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(pct(&mut v, 0.5))
}

/// Measure every step at the channel count the simulator has now.
pub async fn measure(s: &Setup, journal: &Path) -> BenchResult<Floor> {
    let cfg = s.load()?;
    let lnd = LndClient::connect(&chanvault::lnd::LndSettings::from(&cfg.lnd))
        .await
        .map_err(|e| e.to_string())?;
    let multi = lnd.export_all().await.map_err(|e| e.to_string())?.multi;
    let verify = time_p50_async(|| async {
        lnd.verify_multi(&multi)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await?;
    let export =
        time_p50_async(|| async { lnd.export_all().await.map(drop).map_err(|e| e.to_string()) })
            .await?;
    let recipients = Recipients::from_config(&cfg.seal.recipients, &cfg.seal.recipients_files)
        .map_err(|e| e.to_string())?;
    let (dir, journal, port) = (
        s.dir.path().join("floor"),
        journal.to_path_buf(),
        s.rest_port,
    );
    tokio::task::spawn_blocking(move || {
        disk_and_rest(&dir, &journal, port, verify, export, &recipients, &multi)
    })
    .await
    .map_err(|e| e.to_string())?
}

fn disk_and_rest(
    dir: &Path,
    journal: &Path,
    port: u16,
    verify: f64,
    export: f64,
    recipients: &Recipients,
    multi: &[u8],
) -> BenchResult<Floor> {
    use chanvault::fsutil::{commit_temp, write_temp};
    let err = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(dir).map_err(err)?;
    let sealed = chanvault::seal::seal(recipients, multi).map_err(|e| e.to_string())?;
    let blob = dir.join("blob.age");
    let seal_write = time_p50(|| {
        let sealed = chanvault::seal::seal(recipients, multi).map_err(|e| e.to_string())?;
        let tmp = write_temp(&blob, &sealed, 0o600).map_err(err)?;
        std::fs::remove_file(tmp).map_err(err)
    })?;
    // Only the rename and the dir fsync: the write is beside the verify.
    let commit = p50_of(|| {
        let tmp = write_temp(&blob, &sealed, 0o600).map_err(err)?;
        let t = Instant::now();
        commit_temp(&tmp, &blob).map_err(err)?;
        Ok(t.elapsed())
    })?;
    let bytes = std::fs::read(journal).map_err(err)?;
    let copy = dir.join("journal.json");
    let journal_write = time_p50(|| {
        let tmp = write_temp(&copy, &bytes, 0o600).map_err(err)?;
        std::fs::remove_file(tmp).map_err(err)
    })?;
    let journal_commit = p50_of(|| {
        let tmp = write_temp(&copy, &bytes, 0o600).map_err(err)?;
        let t = Instant::now();
        commit_temp(&tmp, &copy).map_err(err)?;
        Ok(t.elapsed())
    })?;
    let hashes = time_p50(|| {
        std::hint::black_box(chanvault::scb::sha256_hex(&sealed));
        std::hint::black_box(chanvault::scb::sha256_hex(&sealed));
        Ok(())
    })?;
    let http = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{port}/chanvault");
    let rtt = time_p50(|| {
        let r = http
            .head(format!("{base}/config"))
            .send()
            .map_err(|e| e.to_string())?;
        r.error_for_status().map(drop).map_err(|e| e.to_string())
    })?;
    // Upload under the SHA-256 of the bytes, as a pack is named; each
    // sample's bytes differ in their last byte, so no name repeats.
    let mut n = 0u8;
    let upload = p50_of(|| {
        n = n.wrapping_add(1);
        let mut body = sealed.clone();
        if let Some(last) = body.last_mut() {
            *last = n;
        }
        let url = format!("{base}/data/{}", chanvault::scb::sha256_hex(&body));
        let t = Instant::now();
        let r = http
            .post(url)
            .body(body)
            .send()
            .map_err(|e| e.to_string())?;
        r.error_for_status().map_err(|e| e.to_string())?;
        Ok(t.elapsed())
    })?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(Floor {
        verify,
        export,
        seal_write,
        commit,
        journal_write,
        journal_commit,
        rtt,
        upload,
        hashes,
    })
}
