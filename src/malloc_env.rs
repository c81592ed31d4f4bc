//! glibc's allocator settings for `watch`, without `unsafe`.
//!
//! With glibc's defaults a long-running `watch` keeps most of the memory it
//! ever used: the mmap threshold rises to the size of the largest buffer
//! freed (a sealed backup is megabytes at thousands of channels), after which
//! buffers of that size come from the heaps, stay there when freed, and are
//! spread over up to eight arenas per core. A fixed threshold (buffers over
//! 4 MiB go back to the kernel when freed) and two arenas keep it small
//! (docs/benchmarks.md, "Memory": 103 → about 31 MiB after a burst at 10,000
//! channels). The threshold is above a 1,000-channel node's buffers (a
//! multi, a sealed backup, a pack: about 0.5 MiB each), which are reused
//! from the heap from one event to the next instead of mapped and faulted
//! in afresh: 128 KiB cost `watch` about a tenth more CPU per event there.
//!
//! glibc reads these settings only from the `GLIBC_TUNABLES` environment
//! variable at start-up, and changing them later needs `mallopt` (`unsafe`).
//! So `watch`, started without the variable, replaces itself once with the
//! same binary, arguments and environment plus [`VALUE`] (`execve`: same
//! process id, same open descriptors, so systemd, supervisors and shells see
//! no difference). A variable already set, even empty, is the user's choice
//! and is left alone: `GLIBC_TUNABLES= chanvault watch` runs with glibc's
//! defaults. Other libcs ignore the variable, so nothing is done there.

use std::ffi::OsStr;

/// The variable glibc reads its tunables from.
pub const VAR: &str = "GLIBC_TUNABLES";
/// What `watch` sets: the same line as the systemd unit and the NixOS module.
pub const VALUE: &str = "glibc.malloc.mmap_threshold=4194304:glibc.malloc.arena_max=2";

/// Whether a process whose `GLIBC_TUNABLES` is `current` should restart
/// itself with [`VALUE`]: only under glibc, and only when it is not set at
/// all. After the restart it is set, so this runs once.
pub fn should_restart(current: Option<&OsStr>) -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu")) && current.is_none()
}

/// Replace this process with the same binary and arguments, with [`VALUE`]
/// set. Returns only when that failed (say, the binary was replaced on disk
/// since it started); the caller then runs with glibc's defaults.
pub fn restart_tuned() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    cmd.args(args).env(VAR, VALUE).exec()
}

/// For `watch`: restart with the tunables when [`should_restart`] says so,
/// and say in the debug log what the allocator runs with.
pub fn tune_for_watch() {
    if should_restart(std::env::var_os(VAR).as_deref()) {
        let e = restart_tuned();
        tracing::warn!(error = %e, "could not restart with {VAR} set; glibc's allocator keeps more memory (see docs/benchmarks.md)");
    }
    let current = std::env::var_os(VAR);
    tracing::debug!(
        tunables = %current.as_deref().map_or("unset".into(), OsStr::to_string_lossy),
        "allocator: {VAR}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_only_when_the_variable_is_absent() {
        let gnu = cfg!(all(target_os = "linux", target_env = "gnu"));
        assert_eq!(should_restart(None), gnu);
        // Set by the user (or by the unit, or by the restart itself): kept.
        assert!(!should_restart(Some(OsStr::new(""))));
        assert!(!should_restart(Some(OsStr::new(
            "glibc.malloc.arena_max=1"
        ))));
        assert!(!should_restart(Some(OsStr::new(VALUE))));
    }

    #[test]
    fn the_value_is_the_units() {
        // One line for the unit, the NixOS module and the binary.
        let unit = include_str!("../contrib/systemd/chanvault.service");
        assert!(unit.contains(&format!("Environment={VAR}={VALUE}")));
        let nix = include_str!("../nix/module.nix");
        assert!(nix.contains(&format!("{VAR}={VALUE}")));
    }
}
