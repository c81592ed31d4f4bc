//! Interop with the stock `age` CLI: what chanvault seals, `age -d` opens, and
//! what `age` seals, chanvault opens. Recovery must never depend on chanvault.
//!
//! These tests need the `age` binary (Debian package `age`) and `ssh-keygen`
//! (Debian package `openssh-client`). They fail, rather than skip, when a tool
//! is missing: a silently skipped interop test proves nothing.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chanvault::seal::{self, Identities, Recipients};

const PLAINTEXT: &[u8] = b"SCB v1 \x00\x01\x02\xfe\xff multi-channel backup for interop";

fn tool(name: &str, package: &str) -> Command {
    match Command::new(name).arg("--version").output() {
        Ok(_) => Command::new(name),
        Err(e) if e.kind() == io::ErrorKind::NotFound => panic!(
            "`{name}` is not installed; the age interop tests need it: \
             install the Debian package `{package}` (apt-get install -y {package}); CI installs it"
        ),
        Err(e) => panic!("cannot run `{name}`: {e}"),
    }
}

fn age() -> Command {
    tool("age", "age")
}

fn run(mut cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// `ssh-keygen -t ed25519 -N ""`; returns the private key path and the
/// public key line.
fn ssh_ed25519_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let mut cmd = tool("ssh-keygen", "openssh-client");
    cmd.args([
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "interop@chanvault",
        "-f",
    ])
    .arg(&key);
    run(cmd);
    let public = String::from_utf8(read(&key.with_extension("pub"))).expect("utf-8 .pub");
    (key, public.trim().to_owned())
}

/// (a) chanvault seals, the stock CLI decrypts.
#[test]
fn chanvault_seals_age_cli_opens() {
    let dir = tempdir();
    let identity = dir.path().join("identity.txt");
    let recipient = seal::write_new_identity(&identity).expect("write identity");
    let recipients = Recipients::from_config(&[recipient], &[]).expect("recipients");
    let ct = seal::seal(&recipients, PLAINTEXT).expect("seal");
    let sealed = dir.path().join("backup.age");
    write(&sealed, &ct);

    // To stdout.
    let mut cmd = age();
    cmd.arg("-d").arg("-i").arg(&identity).arg(&sealed);
    assert_eq!(run(cmd).stdout, PLAINTEXT);

    // To a file.
    let out = dir.path().join("backup.bin");
    let mut cmd = age();
    cmd.arg("--decrypt")
        .arg("--identity")
        .arg(&identity)
        .arg("-o")
        .arg(&out)
        .arg(&sealed);
    run(cmd);
    assert_eq!(read(&out), PLAINTEXT);

    // age-keygen agrees with us about the public key of our identity file.
    let mut cmd = tool("age-keygen", "age");
    cmd.arg("-y").arg(&identity);
    let public = String::from_utf8(run(cmd).stdout).expect("utf-8");
    assert_eq!(public.trim(), recipients.public_keys()[0]);
}

/// (a') a recipients file in `-R` format means the same to both: chanvault
/// seals to it, age opens with either identity.
#[test]
fn chanvault_seals_to_recipients_file_age_cli_opens() {
    let dir = tempdir();
    let id1 = dir.path().join("id1.txt");
    let id2 = dir.path().join("id2.txt");
    let r1 = seal::write_new_identity(&id1).expect("id1");
    let r2 = seal::write_new_identity(&id2).expect("id2");
    let rfile = dir.path().join("recipients.txt");
    write(
        &rfile,
        format!("# holders\n{r1}\n\n# second holder\n{r2}\n").as_bytes(),
    );
    let recipients = Recipients::from_config(&[], std::slice::from_ref(&rfile)).expect("parse");
    assert_eq!(recipients.public_keys(), &[r1, r2]);
    let sealed = dir.path().join("backup.age");
    write(&sealed, &seal::seal(&recipients, PLAINTEXT).expect("seal"));
    for id in [&id1, &id2] {
        let mut cmd = age();
        cmd.arg("-d").arg("-i").arg(id).arg(&sealed);
        assert_eq!(run(cmd).stdout, PLAINTEXT, "with {}", id.display());
    }
}

/// (b) the stock CLI seals with `-r` and with `-R`, chanvault opens.
#[test]
fn age_cli_seals_chanvault_opens() {
    let dir = tempdir();
    let plain = dir.path().join("plain.bin");
    write(&plain, PLAINTEXT);

    // Identity made by age-keygen, opened by chanvault.
    let key = dir.path().join("key.txt");
    let mut cmd = tool("age-keygen", "age");
    cmd.arg("-o").arg(&key);
    run(cmd);
    let mut cmd = tool("age-keygen", "age");
    cmd.arg("-y").arg(&key);
    let public = String::from_utf8(run(cmd).stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    let ids = Identities::from_file(&key).expect("parse age-keygen identity");
    assert_eq!(ids.recipients(), vec![public.clone()]);

    // -r
    let out_r = dir.path().join("r.age");
    let mut cmd = age();
    cmd.arg("-r").arg(&public).arg("-o").arg(&out_r).arg(&plain);
    run(cmd);
    let pt = seal::open(&ids, &read(&out_r)).expect("open age -r output");
    assert_eq!(pt.expose(), PLAINTEXT);

    // -R with comments, blank lines and a second recipient from chanvault.
    let (other_text, other_public) = seal::generate_identity();
    let rfile = dir.path().join("recipients.txt");
    write(
        &rfile,
        format!("# who can open backups\n\n{other_public}\n{public}\n").as_bytes(),
    );
    let out_big_r = dir.path().join("bigr.age");
    let mut cmd = age();
    cmd.arg("-R")
        .arg(&rfile)
        .arg("-o")
        .arg(&out_big_r)
        .arg(&plain);
    run(cmd);
    let ct = read(&out_big_r);
    assert_eq!(seal::open(&ids, &ct).expect("open").expose(), PLAINTEXT);
    let other = Identities::from_secret_str(&other_text, "generated").expect("parse");
    assert_eq!(seal::open(&other, &ct).expect("open").expose(), PLAINTEXT);

    // A key that was not a recipient is told apart from damage.
    let (stranger_text, _) = seal::generate_identity();
    let stranger = Identities::from_secret_str(&stranger_text, "stranger").expect("parse");
    assert!(matches!(
        seal::open(&stranger, &ct),
        Err(seal::SealError::WrongIdentity { .. })
    ));
}

/// (c) ssh-ed25519: chanvault seals to the .pub, `age -d -i id_ed25519`
/// opens; and the other way round.
#[test]
fn ssh_ed25519_interop() {
    let dir = tempdir();
    let (key, public) = ssh_ed25519_key(dir.path());

    let recipients =
        Recipients::from_config(std::slice::from_ref(&public), &[]).expect("ssh recipient");
    let sealed = dir.path().join("backup.age");
    write(&sealed, &seal::seal(&recipients, PLAINTEXT).expect("seal"));
    let mut cmd = age();
    cmd.arg("-d").arg("-i").arg(&key).arg(&sealed);
    assert_eq!(run(cmd).stdout, PLAINTEXT);

    // The .pub file works as a recipients file for both tools.
    let pubfile = key.with_extension("pub");
    let from_file =
        Recipients::from_config(&[], std::slice::from_ref(&pubfile)).expect("pub as -R file");
    assert_eq!(from_file.public_keys(), recipients.public_keys());

    let plain = dir.path().join("plain.bin");
    write(&plain, PLAINTEXT);
    let out = dir.path().join("from-age.age");
    let mut cmd = age();
    cmd.arg("-R").arg(&pubfile).arg("-o").arg(&out).arg(&plain);
    run(cmd);
    let ids = Identities::from_file(&key).expect("ssh identity");
    assert_eq!(ids.recipients(), recipients.public_keys());
    assert_eq!(
        seal::open(&ids, &read(&out))
            .expect("open age output")
            .expose(),
        PLAINTEXT
    );
}
