//! The drill's private temp dir. The drill writes a plaintext
//! `channel.backup` the way a stranger's `restore fetch` would, so the dir
//! is made 0700 under a parent of this user's that is 0700 too
//! (`$TMPDIR/chanvault-<uid>`), and it is removed with everything in it
//! when the [`DrillDir`] is dropped: on success, on error, on an early
//! return, on a panic. A drill killed outright (SIGKILL, power loss) cannot
//! clean up after itself; the next drill sweeps what it left (dirs named
//! for a pid that no longer runs).

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Each drill's own dir is `<PREFIX><pid>-<random hex>`.
const PREFIX: &str = "chanvault-drill-";

/// Where the plaintext goes inside the drill dir.
const FILE_NAME: &str = "channel.backup";

/// The parent of every drill dir of this user: `$TMPDIR/chanvault-<uid>`.
fn default_parent() -> PathBuf {
    std::env::temp_dir().join(format!("chanvault-{}", euid()))
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// A drill's private dir (0700), removed with its contents on drop.
pub(super) struct DrillDir {
    path: PathBuf,
}

impl DrillDir {
    /// A fresh dir under [`default_parent`], after sweeping what killed
    /// drills left there (and directly in `$TMPDIR`, where earlier versions
    /// made drill dirs).
    pub(super) fn create() -> Result<Self, String> {
        sweep(&std::env::temp_dir());
        Self::create_in(&default_parent())
    }

    /// A fresh, randomly named dir under `parent`, which is created 0700,
    /// or made 0700 if it is this user's directory with a looser mode, or
    /// refused (a symlink, a file, another user's).
    pub(super) fn create_in(parent: &Path) -> Result<Self, String> {
        private_parent(parent)?;
        sweep(parent);
        let path = parent.join(format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            hex::encode(rand::random::<[u8; 6]>())
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o700)))
            .map_err(|e| format!("cannot create the drill's temp dir {}: {e}", path.display()))?;
        Ok(Self { path })
    }

    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.path
    }

    /// Write `plain` as a new `channel.backup` (0600) and read back what a
    /// stranger would find there, into a zeroizing buffer.
    pub(super) fn write_and_read_back(&self, plain: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        let out = self.path.join(FILE_NAME);
        crate::fsutil::create_secret_file(&out, plain)
            .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        let read = || -> io::Result<Zeroizing<Vec<u8>>> {
            let f = fs::File::open(&out)?;
            let len = usize::try_from(f.metadata()?.len()).unwrap_or(0);
            // Sized up front: growing would leave unwiped copies behind.
            let mut buf = Zeroizing::new(Vec::with_capacity(len.saturating_add(1)));
            f.take(len as u64 + 1).read_to_end(&mut buf)?;
            Ok(buf)
        };
        read().map_err(|e| format!("cannot read {}: {e}", out.display()))
    }
}

impl Drop for DrillDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(
                dir = %self.path.display(),
                error = %e,
                "cannot remove the drill's temp dir; the next drill sweeps it"
            );
        }
    }
}

/// Make `dir` this user's private directory, or say why it cannot be.
fn private_parent(dir: &Path) -> Result<(), String> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(format!(
                "cannot create the drill's temp dir {}: {e}",
                dir.display()
            ));
        }
    }
    let meta = fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot read the drill's temp dir {}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!(
            "the drill's temp dir {} is not a directory (a symlink or a file); remove it, or set TMPDIR elsewhere",
            dir.display()
        ));
    }
    let me = euid();
    if meta.uid() != me {
        return Err(format!(
            "the drill's temp dir {} belongs to uid {}, not to this user (uid {me}); remove it, or set TMPDIR elsewhere",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
            format!(
                "the drill's temp dir {} has mode {:03o} and cannot be made 0700: {e}",
                dir.display(),
                meta.mode() & 0o777
            )
        })?;
    }
    Ok(())
}

/// Remove the drill dirs in `dir` that drills killed outright left behind:
/// named for a pid that no longer runs, a directory, this user's. Best
/// effort (what cannot be removed waits for the next drill); returns how
/// many went. A dead drill's pid that a live process reuses keeps its dir
/// until that process ends.
fn sweep(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let me = euid();
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(pid_of) else {
            continue;
        };
        if pid == std::process::id() || alive(pid) {
            continue;
        }
        let path = entry.path();
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() && m.uid() == me => {}
            _ => continue,
        }
        if fs::remove_dir_all(&path).is_ok() {
            tracing::info!(dir = %path.display(), "removed a killed drill's temp dir");
            removed += 1;
        }
    }
    removed
}

/// The pid in a drill dir's name.
fn pid_of(name: &str) -> Option<u32> {
    let (pid, rest) = name.strip_prefix(PREFIX)?.split_once('-')?;
    (!rest.is_empty()).then_some(())?;
    pid.parse().ok()
}

/// Whether a process with this pid runs (ours or another user's).
fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn entries(p: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A pid that ran and has ended.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid));
        pid
    }

    #[test]
    fn a_looser_parent_is_made_0700_and_the_dir_is_0700() {
        let t = tempfile::tempdir().unwrap();
        let parent = t.path().join("chanvault-uid");
        fs::create_dir(&parent).unwrap();
        fs::set_permissions(&parent, fs::Permissions::from_mode(0o755)).unwrap();
        let d = DrillDir::create_in(&parent).unwrap();
        assert_eq!(mode(&parent), 0o700);
        assert_eq!(mode(d.path()), 0o700);
        assert!(d.path().starts_with(&parent));
        let name = d.path().file_name().unwrap().to_str().unwrap();
        assert_eq!(pid_of(name), Some(std::process::id()), "{name}");
        // A new parent is made 0700 too.
        let fresh = t.path().join("fresh");
        let _d = DrillDir::create_in(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
    }

    #[test]
    fn a_parent_that_is_not_a_private_dir_is_refused_with_its_path() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("a-file");
        fs::write(&file, b"x").unwrap();
        let link = t.path().join("a-link");
        std::os::unix::fs::symlink(t.path(), &link).unwrap();
        for p in [&file, &link] {
            let Err(e) = DrillDir::create_in(p) else {
                panic!("{} accepted", p.display());
            };
            assert!(e.contains(&p.display().to_string()), "{e}");
            assert!(e.contains("not a directory"), "{e}");
        }
    }

    #[test]
    fn no_plaintext_remains_on_any_exit_path() {
        let t = tempfile::tempdir().unwrap();
        let parent = t.path().join("p");
        let plain = b"plaintext channel backup";
        // A passing drill: identical bytes read back.
        let d = DrillDir::create_in(&parent).unwrap();
        assert_eq!(d.write_and_read_back(plain).unwrap().as_slice(), plain);
        assert_eq!(mode(&d.path().join(FILE_NAME)), 0o600);
        drop(d);
        assert!(entries(&parent).is_empty(), "{:?}", entries(&parent));
        // A failing drill: different bytes than expected.
        let d = DrillDir::create_in(&parent).unwrap();
        let ok = d.write_and_read_back(plain).unwrap().as_slice() == b"other";
        assert!(!ok);
        drop(d);
        assert!(entries(&parent).is_empty(), "{:?}", entries(&parent));
        // An early return with `?` after the plaintext is written.
        let early = || -> Result<(), String> {
            let d = DrillDir::create_in(&parent)?;
            d.write_and_read_back(plain)?;
            Err("the check failed".into())
        };
        assert!(early().is_err());
        assert!(entries(&parent).is_empty(), "{:?}", entries(&parent));
        // A panic.
        let p = parent.clone();
        let r = std::panic::catch_unwind(move || {
            let d = DrillDir::create_in(&p).unwrap();
            d.write_and_read_back(plain).unwrap();
            panic!("drill panicked");
        });
        assert!(r.is_err());
        assert!(entries(&parent).is_empty(), "{:?}", entries(&parent));
    }

    #[test]
    fn dirs_of_dead_drills_are_swept_and_live_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let parent = t.path().join("p");
        fs::create_dir(&parent).unwrap();
        let dead = parent.join(format!("{PREFIX}{}-0a1b2c", dead_pid()));
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join(FILE_NAME), b"left by a SIGKILLed drill").unwrap();
        let live = format!("{PREFIX}{}-live", std::process::id());
        fs::create_dir(parent.join(&live)).unwrap();
        for other in ["unrelated", "chanvault-drill-x-1", "chanvault-drill-"] {
            fs::create_dir(parent.join(other)).unwrap();
        }
        let d = DrillDir::create_in(&parent).unwrap();
        assert!(!dead.exists());
        let own = d.path().file_name().unwrap().to_string_lossy().into_owned();
        let mut want = vec![
            "chanvault-drill-".to_owned(),
            "chanvault-drill-x-1".to_owned(),
            live,
            own,
            "unrelated".to_owned(),
        ];
        want.sort();
        assert_eq!(entries(&parent), want);
    }
}
