use super::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const PLAINTEXT: &[u8] = b"static channel backup: multi-chan blob \x00\x01\x02\xff";

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn x25519_pair() -> (Identities, String) {
    let (text, public) = generate_identity();
    let ids = Identities::from_secret_str(&text, "test identity").expect("parse generated");
    (ids, public)
}

fn recipients(keys: &[&str]) -> Recipients {
    let inline: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    Recipients::from_config(&inline, &[]).expect("recipients")
}

/// Generate an unencrypted SSH key pair with ssh-keygen; `None` (with a
/// printed notice) if ssh-keygen is not installed.
fn ssh_keygen(dir: &Path, kind: &str) -> Option<(PathBuf, String)> {
    let key = dir.join(format!("id_{kind}"));
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", "test@chanvault", "-f"])
        .arg(&key);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    match cmd.status() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!(
                "NOTICE: ssh-keygen not found, skipping the SSH part of this test \
                 (apt-get install openssh-client)"
            );
            None
        }
        Err(e) => panic!("running ssh-keygen: {e}"),
        Ok(status) => {
            assert!(status.success(), "ssh-keygen -t {kind} failed");
            let public = std::fs::read_to_string(key.with_extension("pub")).expect("read .pub");
            Some((key, public.trim().to_owned()))
        }
    }
}

fn sealed_once() -> (Identities, Vec<u8>) {
    let (ids, public) = x25519_pair();
    let ct = seal(&recipients(&[&public]), PLAINTEXT).expect("seal");
    (ids, ct)
}

#[test]
fn round_trip_to_several_recipients() {
    let dir = tempdir();
    let (id_a, pub_a) = x25519_pair();
    let (id_b, pub_b) = x25519_pair();
    let mut inline = vec![pub_a.clone(), pub_b.clone()];
    let mut ssh_ids = Vec::new();
    let mut ssh_public = Vec::new();
    for kind in ["ed25519", "rsa"] {
        if let Some((key, public)) = ssh_keygen(dir.path(), kind) {
            // Canonical form drops the comment.
            let canonical = public.rsplit_once(' ').expect("comment").0.to_owned();
            inline.push(public);
            ssh_public.push(canonical.clone());
            if kind == "rsa" {
                // ssh-rsa seals, but does not open (RUSTSEC-2023-0071).
                let err = Identities::from_file(&key).expect_err("ssh-rsa identity");
                assert!(err.to_string().contains("ssh-rsa"), "{err}");
                continue;
            }
            let ids = Identities::from_file(&key).expect("ssh identity");
            assert_eq!(ids.recipients(), vec![canonical.clone()]);
            ssh_ids.push(ids);
        }
    }
    let recips = Recipients::from_config(&inline, &[]).expect("recipients");
    assert_eq!(recips.len(), inline.len());
    assert_eq!(recips.public_keys()[0], pub_a);
    assert_eq!(recips.public_keys()[1], pub_b);
    for (i, canonical) in ssh_public.iter().enumerate() {
        assert_eq!(&recips.public_keys()[2 + i], canonical);
        assert!(!canonical.contains("test@chanvault"));
        // The canonical form (no comment) parses back to itself.
        let (_, again) = Recipients::parse_one(canonical, "manifest").expect("reparse");
        assert_eq!(&again, canonical);
    }

    let ct = seal(&recips, PLAINTEXT).expect("seal");
    assert!(
        ct.starts_with(b"age-encryption.org/v1\n"),
        "binary, not armored"
    );
    assert_eq!(id_a.recipients(), vec![pub_a]);
    for ids in [&id_a, &id_b].into_iter().chain(ssh_ids.iter()) {
        let pt = open(ids, &ct).unwrap_or_else(|e| panic!("open with {ids:?}: {e}"));
        assert_eq!(pt.expose(), PLAINTEXT);
    }

    // Empty and large (multi-chunk) plaintexts too.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for pt in [&b""[..], &big] {
        let ct = seal(&recips, pt).expect("seal");
        assert_eq!(open(&id_b, &ct).expect("open").expose(), pt);
    }
}

#[test]
fn recipients_file_with_comments_and_blank_lines() {
    let dir = tempdir();
    let (_, a) = x25519_pair();
    let (_, b) = x25519_pair();
    let (_, c) = x25519_pair();
    let path = dir.path().join("recipients.txt");
    std::fs::write(
        &path,
        format!("# backup holders\n\n{a}\n   \n  # indented comment\n{b}\r\n{a}\n"),
    )
    .expect("write");
    let r = Recipients::from_config(std::slice::from_ref(&c), std::slice::from_ref(&path))
        .expect("parse");
    // Inline first, then file order; the duplicate of `a` is kept once.
    assert_eq!(r.public_keys(), &[c.clone(), a.clone(), b.clone()]);
    assert_eq!(r.len(), 3);
    assert!(!r.is_empty());
    let dbg = format!("{r:?}");
    assert!(dbg.contains(&a) && dbg.contains(&b), "{dbg}");
}

#[test]
fn malformed_recipients_name_their_source() {
    let dir = tempdir();
    let (_, good) = x25519_pair();

    // Change the last character (bech32 detects any single substitution);
    // pick one that differs from it, or the key would stay valid 1 time in 32.
    let last = if good.ends_with('x') { 'y' } else { 'x' };
    let bad_age = format!("{}{last}", &good[..good.len() - 1]);
    let err = Recipients::from_config(&[good.clone(), bad_age], &[]).expect_err("bad");
    assert!(
        matches!(&err, SealError::BadRecipient { source_desc, .. } if source_desc == "seal.recipients[1]"),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("seal.recipients[1]: "), "{err}");

    let path = dir.path().join("r.txt");
    std::fs::write(&path, format!("# c\n{good}\n\nnot-a-key at all\n")).expect("write");
    let err = Recipients::from_config(&[], std::slice::from_ref(&path)).expect_err("bad");
    let want = format!("{} line 4", path.display());
    assert!(
        matches!(&err, SealError::BadRecipient { source_desc, .. } if *source_desc == want),
        "{err:?}"
    );
    assert!(err.to_string().contains(&want), "{err}");

    for (s, needle) in [
        ("ssh-ed25519 AAAAnot-base64!", "not a valid SSH public key"),
        ("ssh-dss AAAAB3NzaC1kc3M=", "ssh-dss is not supported"),
        ("age1yubikey1qqqqqq", "not a valid age X25519 recipient"),
        ("", "is empty"),
    ] {
        let Err(err) = Recipients::parse_one(s, "here") else {
            panic!("{s:?} parsed as a recipient");
        };
        assert!(err.to_string().contains(needle), "{s:?}: {err}");
    }
}

#[test]
fn recipients_errors_for_missing_empty_and_none() {
    let dir = tempdir();
    assert!(matches!(
        Recipients::from_config(&[], &[]),
        Err(SealError::NoRecipients)
    ));
    let missing = dir.path().join("nope.txt");
    let err = Recipients::from_config(&[], std::slice::from_ref(&missing)).expect_err("missing");
    assert!(matches!(err, SealError::ReadRecipients { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.txt"), "{err}");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# nobody yet\n\n").expect("write");
    let err = Recipients::from_config(&[], std::slice::from_ref(&empty)).expect_err("empty");
    assert!(
        matches!(err, SealError::EmptyRecipientsFile { .. }),
        "{err:?}"
    );
}

#[test]
fn secret_key_pasted_as_recipient_is_not_echoed() {
    let (text, _) = generate_identity();
    let line = text
        .expose()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("key line")
        .to_owned();
    for s in [line.clone(), line.to_lowercase()] {
        let err = Recipients::from_config(&[s], &[]).expect_err("secret as recipient");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("SECRET age identity key"), "{shown}");
        assert!(!shown.contains("AGE-SECRET-KEY"), "{shown}");
        assert!(!shown.contains(&line[15..]), "key material leaked: {shown}");
    }
}

#[test]
fn wrong_identity_is_reported_as_such() {
    let (_, ct) = sealed_once();
    let (other, _) = x25519_pair();
    let err = open(&other, &ct).expect_err("wrong key");
    assert!(matches!(err, SealError::WrongIdentity { .. }), "{err:?}");
    assert!(err.to_string().contains("test identity"), "{err}");
}

#[test]
fn flipped_byte_is_corrupt() {
    let (ids, ct) = sealed_once();
    let header_end = ct
        .windows(4)
        .position(|w| w == b"--- ")
        .expect("header MAC line");
    // In the version line, in the header MAC, and all through the payload
    // (nonce, ciphertext, tag). A flip inside a recipient stanza body is
    // indistinguishable from "not our key" and reads as WrongIdentity.
    let mut positions = vec![0, 5, header_end + 6];
    let payload_start = ct
        .iter()
        .skip(header_end)
        .position(|&b| b == b'\n')
        .expect("eol")
        + header_end
        + 1;
    positions.extend(payload_start..ct.len());
    for i in positions {
        let mut bad = ct.clone();
        bad[i] ^= 0x01;
        match open(&ids, &bad) {
            Err(SealError::Corrupt(msg)) => assert!(!msg.is_empty()),
            other => panic!("flip at {i}: expected Corrupt, got {other:?}"),
        }
    }
    let err = open(&ids, b"this is not an age file at all\n").expect_err("garbage");
    assert!(matches!(err, SealError::Corrupt(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("ciphertext is damaged or was tampered with: "),
        "{err}"
    );
}

#[test]
fn truncated_is_corrupt() {
    let (ids, ct) = sealed_once();
    for len in 0..ct.len() {
        match open(&ids, &ct[..len]) {
            Err(SealError::Corrupt(_)) => {}
            other => panic!(
                "truncated to {len}/{}: expected Corrupt, got {other:?}",
                ct.len()
            ),
        }
    }
    let mut longer = ct.clone();
    longer.push(0);
    assert!(matches!(open(&ids, &longer), Err(SealError::Corrupt(_))));
}

#[test]
fn debug_and_errors_never_show_secret_keys() {
    let dir = tempdir();
    let (text, public) = generate_identity();
    assert_eq!(format!("{text:?}"), "<sensitive>");
    let ids = Identities::from_secret_str(&text, "escrow").expect("parse");
    let shown = format!("{ids:?} {ids:#?}");
    assert!(!shown.contains("AGE-SECRET-KEY"), "{shown}");
    assert!(shown.contains("count: 1"), "{shown}");

    // A valid key line followed by a damaged one: the error names line 4
    // and shows neither line.
    let key = text
        .expose()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("key line")
        .to_owned();
    let last = if key.ends_with('Q') { 'P' } else { 'Q' };
    let damaged = format!("{}{last}", &key[..key.len() - 1]);
    let path = dir.path().join("identity.txt");
    std::fs::write(&path, format!("{}# second\n{damaged}\n", text.expose())).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = Identities::from_file(&path).expect_err("damaged");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("line 5"), "{shown}");
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(!shown.contains("AGE-SECRET-KEY"), "{shown}");
    assert!(!shown.contains(&key[20..40]), "{shown}");

    // Other mistakes name the file and say what to do, without key text.
    for (content, needle) in [
        (format!("{public}\n"), "public recipient"),
        ("# only comments\n\n".to_owned(), "contains no identities"),
        (
            "age-encryption.org/v1\n-> scrypt xx 18\n".to_owned(),
            "passphrase-encrypted",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n".to_owned(),
            "private key",
        ),
    ] {
        let p = dir.path().join("other.txt");
        std::fs::write(&p, &content).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let err = Identities::from_file(&p).expect_err(needle);
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(needle), "{shown}");
        assert!(shown.contains("other.txt"), "{shown}");
        assert!(!shown.contains("AGE-SECRET-KEY"), "{shown}");
    }
    let err = Identities::from_file(&dir.path().join("missing")).expect_err("missing");
    assert!(matches!(err, SealError::ReadIdentity { .. }), "{err:?}");
}

#[test]
fn an_ssh_rsa_identity_is_refused_with_one_clear_line() {
    let dir = tempdir();
    let Some((key, _)) = ssh_keygen(dir.path(), "rsa") else {
        return;
    };
    let err = Identities::from_file(&key).expect_err("ssh-rsa identity");
    assert!(matches!(err, SealError::BadIdentity { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(!shown.contains('\n'), "{shown}");
    for needle in [
        key.display().to_string().as_str(),
        "ssh-rsa",
        "RUSTSEC-2023-0071",
        "age X25519",
        "ssh-ed25519",
    ] {
        assert!(shown.contains(needle), "{needle}: {shown}");
    }
    // The key text never shows.
    assert!(
        !format!("{shown} {err:?}").contains("PRIVATE KEY"),
        "{shown}"
    );
    // The same key in PEM form (ssh-keygen -m PEM) is refused the same way.
    let pem = dir.path().join("id_rsa_pem");
    std::fs::copy(&key, &pem).expect("copy");
    let converted = Command::new("ssh-keygen")
        .args(["-q", "-p", "-N", "", "-P", "", "-m", "PEM", "-f"])
        .arg(&pem)
        .output()
        .expect("ssh-keygen");
    assert!(converted.status.success());
    let head = std::fs::read_to_string(&pem).expect("read");
    assert!(
        head.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "not PEM"
    );
    let err = Identities::from_file(&pem).expect_err("PEM ssh-rsa identity");
    assert!(err.to_string().contains("RUSTSEC-2023-0071"), "{err}");
    // As a recipient, ssh-rsa still seals.
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("pub");
    let ct = seal(&recipients(&[public.trim()]), PLAINTEXT).expect("seal to ssh-rsa");
    assert!(ct.starts_with(b"age-encryption.org/v1\n-> ssh-rsa "));
}

#[test]
fn passphrase_protected_ssh_key_is_refused() {
    let dir = tempdir();
    let key = dir.path().join("id_locked");
    let status = match Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "hunter2", "-f"])
        .arg(&key)
        .status()
    {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!("NOTICE: ssh-keygen not found, skipping this test");
            return;
        }
        other => other.expect("ssh-keygen"),
    };
    assert!(status.success());
    let err = Identities::from_file(&key).expect_err("encrypted key");
    assert!(err.to_string().contains("passphrase-protected"), "{err}");
}

#[test]
fn identity_file_format_mode_and_no_overwrite() {
    let dir = tempdir();
    let path = dir.path().join("identity.txt");
    let public = write_new_identity(&path).expect("write");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", lines.len());
    let created = lines[0].strip_prefix("# created: ").expect("created line");
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );
    assert_eq!(lines[1], format!("# public key: {public}"));
    assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
    assert!(text.ends_with('\n'));

    let ids = Identities::from_file(&path).expect("parse");
    assert_eq!(ids.recipients(), vec![public.clone()]);
    let ct = seal(&recipients(&[&public]), PLAINTEXT).expect("seal");
    assert_eq!(open(&ids, &ct).expect("open").expose(), PLAINTEXT);

    let err = write_new_identity(&path).expect_err("must not overwrite");
    assert!(matches!(err, SealError::IdentityExists { .. }), "{err:?}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), text);

    let err = write_new_identity(&dir.path().join("no/such/dir/id")).expect_err("no dir");
    assert!(matches!(err, SealError::WriteIdentity { .. }), "{err:?}");
}
