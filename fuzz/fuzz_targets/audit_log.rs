//! The escrow audit log verifier (`escrow::audit::AuditLog::verify`). It reads
//! a file, so each input is written to a per-process temp dir first.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use chanvault::escrow::audit::{AUDIT_FILE, AuditLog};
use libfuzzer_sys::fuzz_target;

static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let d = std::env::temp_dir().join(format!("chanvault-fuzz-audit-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
});

fuzz_target!(|data: &[u8]| {
    std::fs::write(DIR.join(AUDIT_FILE), data).expect("write input");
    if let Err(e) = AuditLog::new(&DIR).verify() {
        assert!(!e.to_string().contains('\n'), "one-line error");
    }
});
