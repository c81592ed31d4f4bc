//! age sealing of channel backups.
//!
//! A backup is only useful to someone who can open it after the node's disk is
//! gone, so it is sealed with age (binary format, no armor) to recipients kept
//! elsewhere: X25519 keys (`age1…`) and SSH keys (`ssh-ed25519`, `ssh-rsa`).
//! The output is byte-for-byte what the stock `age` CLI produces and accepts,
//! so recovery never depends on chanvault itself.
//!
//! Secret habits: identity text is read into zeroizing buffers and parsed in
//! place, decrypted plaintext comes back as [`SecretBytes`], [`Identities`]
//! has no `Debug` that shows key material, and no error message ever echoes a
//! line that might be a secret key (errors name the file and line instead).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::fsutil;
use crate::secret::{SecretBytes, SecretString};

/// Largest identity file we will read. Real ones are < 20 KiB (a 16384-bit
/// RSA key); anything bigger is the wrong file, and reading it whole into
/// memory would be pointless.
const IDENTITY_FILE_LIMIT: u64 = 1 << 20;

/// Largest recipients file we will read, for the same reason.
const RECIPIENTS_FILE_LIMIT: u64 = 1 << 20;

/// What a recipient must look like; appended to parse errors.
const RECIPIENT_HINT: &str = "expected an age X25519 public key (age1…, as printed by age-keygen) \
     or an SSH public key line (ssh-ed25519 AAAA… or ssh-rsa AAAA…, as in a .pub file)";

/// Everything a user can get wrong when sealing or opening a backup.
///
/// Messages name what and where and say what to do. None of them contains key
/// material: offending lines are identified by file and line number, never
/// quoted.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// A recipient string (from the config or a recipients file) is not usable.
    #[error("{source_desc}: {reason}")]
    BadRecipient { source_desc: String, reason: String },

    /// A recipients file could not be read.
    #[error("cannot read recipients file {}: {source}", path.display())]
    ReadRecipients {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A recipients file holds only comments and blank lines.
    #[error(
        "recipients file {} contains no recipients; add one public key per line \
         (age1… or ssh-ed25519/ssh-rsa) or remove it from seal.recipients_files",
        path.display()
    )]
    EmptyRecipientsFile { path: PathBuf },

    /// Neither `seal.recipients` nor `seal.recipients_files` yielded a key.
    #[error(
        "no recipients configured: set seal.recipients or seal.recipients_files \
         so that backups can be opened by someone"
    )]
    NoRecipients,

    /// An identity file could not be read.
    #[error("cannot read identity file {}: {source}", path.display())]
    ReadIdentity {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// An identity file that others can read: refuse it rather than use a
    /// key that may already have leaked, and say how to fix it.
    #[error(
        "identity file {} is readable by group or others (mode {mode:03o}); run `chmod 600 {}` \
         (and consider the key exposed if others could log in)",
        path.display(),
        path.display()
    )]
    IdentityPermissions { path: PathBuf, mode: u32 },

    /// An identity file or escrowed identity could not be parsed. The reason
    /// never quotes the key text.
    #[error("identity {source_desc}: {reason}")]
    BadIdentity { source_desc: String, reason: String },

    /// age refused to encrypt (should not happen with parsed recipients).
    #[error("encrypting the backup failed: {0}")]
    Encrypt(String),

    /// None of the identities can open this backup.
    #[error(
        "no identity in {source_desc} matches any recipient of this backup; it was sealed \
         to other keys (check which public keys were in seal.recipients when it was made) \
         or its header is damaged"
    )]
    WrongIdentity { source_desc: String },

    /// The backup is encrypted with a passphrase, which chanvault never does.
    #[error(
        "this file is encrypted with a passphrase, not to recipients; it was not sealed \
         by chanvault (open it with `age -d`)"
    )]
    PassphraseEncrypted,

    /// Tampered, truncated or not an age file at all.
    #[error("ciphertext is damaged or was tampered with: {0}")]
    Corrupt(String),

    /// Any other decryption failure reported by age.
    #[error("decrypting the backup failed: {0}")]
    Decrypt(String),

    /// `write_new_identity` would overwrite an existing file.
    #[error(
        "identity file {} already exists; chanvault never overwrites an identity \
         (move it away first, or choose another path)",
        path.display()
    )]
    IdentityExists { path: PathBuf },

    /// `write_new_identity` could not create or write the file.
    #[error("cannot write identity file {}: {source}", path.display())]
    WriteIdentity {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Parsed recipients: X25519 (`age1…`) and SSH (`ssh-ed25519 …`, `ssh-rsa …`)
/// public keys. Duplicates (same canonical key) are kept once.
pub struct Recipients {
    keys: Vec<Box<dyn age::Recipient + Send + Sync>>,
    public: Vec<String>,
}

impl Recipients {
    /// `inline`: strings from the config (each labelled for errors as
    /// `seal.recipients[i]`); `files`: recipients files in the age CLI's `-R`
    /// format (one per line, `#` comments and blank lines skipped; errors name
    /// the file and 1-based line).
    pub fn from_config(inline: &[String], files: &[PathBuf]) -> Result<Self, SealError> {
        let mut out = Recipients {
            keys: Vec::new(),
            public: Vec::new(),
        };
        for (i, s) in inline.iter().enumerate() {
            out.push(Self::parse_one(s, &format!("seal.recipients[{i}]"))?);
        }
        for path in files {
            let text = read_recipients_file(path)?;
            let mut found = false;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let desc = format!("{} line {}", path.display(), n + 1);
                out.push(Self::parse_one(line, &desc)?);
                found = true;
            }
            if !found {
                return Err(SealError::EmptyRecipientsFile { path: path.clone() });
            }
        }
        if out.is_empty() {
            return Err(SealError::NoRecipients);
        }
        Ok(out)
    }

    /// Parse one recipient; returns it with its canonical public string (for
    /// SSH keys: `"ssh-ed25519 AAAA…"` without the comment).
    pub fn parse_one(
        s: &str,
        source_desc: &str,
    ) -> Result<(Box<dyn age::Recipient + Send + Sync>, String), SealError> {
        let bad = |reason: String| SealError::BadRecipient {
            source_desc: source_desc.to_owned(),
            reason,
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(bad(format!("is empty; {RECIPIENT_HINT}")));
        }
        // Never echo the input: someone may paste a secret key here by mistake.
        if starts_with_ignore_case(s, "AGE-SECRET-KEY-") {
            return Err(bad(
                "this is a SECRET age identity key, not a public recipient: \
                 remove it from here and use its public key instead (`age-keygen -y IDENTITY_FILE`)"
                    .to_owned(),
            ));
        }
        if s.starts_with("-----BEGIN") {
            return Err(bad(
                "this looks like a private key; use the public key (the .pub file) instead"
                    .to_owned(),
            ));
        }
        if starts_with_ignore_case(s, "age1") {
            return match s.parse::<age::x25519::Recipient>() {
                Ok(r) => {
                    let canonical = r.to_string();
                    Ok((Box::new(r), canonical))
                }
                Err(e) => Err(bad(format!(
                    "not a valid age X25519 recipient ({e}); plugin and post-quantum \
                     recipients are not supported; {RECIPIENT_HINT}"
                ))),
            };
        }
        match s.parse::<age::ssh::Recipient>() {
            Ok(r) => {
                let canonical = r.to_string();
                Ok((Box::new(r), canonical))
            }
            Err(age::ssh::ParseRecipientKeyError::RsaModulusTooSmall) => Err(bad(
                "ssh-rsa key is shorter than 2048 bits, which age refuses as weak; \
                 use an ssh-ed25519 or a longer ssh-rsa key"
                    .to_owned(),
            )),
            Err(age::ssh::ParseRecipientKeyError::RsaModulusTooLarge) => Err(bad(
                "ssh-rsa key is longer than age supports; use an ssh-ed25519 key".to_owned(),
            )),
            Err(age::ssh::ParseRecipientKeyError::Unsupported(key_type)) => Err(bad(format!(
                "SSH key type {key_type} is not supported by age; use ssh-ed25519 or ssh-rsa"
            ))),
            Err(_) if s.starts_with("ssh-") => Err(bad(format!(
                "not a valid SSH public key (damaged or incomplete); {RECIPIENT_HINT}"
            ))),
            Err(_) => Err(bad(format!("not a recipient; {RECIPIENT_HINT}"))),
        }
    }

    /// Canonical public-key strings (for manifests; for SSH keys:
    /// `"ssh-ed25519 AAAA…"` without the comment).
    pub fn public_keys(&self) -> &[String] {
        &self.public
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn push(&mut self, (key, public): (Box<dyn age::Recipient + Send + Sync>, String)) {
        if !self.public.contains(&public) {
            self.keys.push(key);
            self.public.push(public);
        }
    }
}

impl fmt::Debug for Recipients {
    /// Public keys only: they are public, and useful in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Recipients").field(&self.public).finish()
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn read_recipients_file(path: &Path) -> Result<Zeroizing<String>, SealError> {
    let io_err = |source| SealError::ReadRecipients {
        path: path.to_path_buf(),
        source,
    };
    // Zeroizing although recipients are public: a misconfigured path may well
    // point at an identity file.
    let bytes = read_limited(path, RECIPIENTS_FILE_LIMIT).map_err(io_err)?;
    if bytes.len() as u64 > RECIPIENTS_FILE_LIMIT {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidData,
            "file is larger than 1 MiB; this is not a recipients file",
        )));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        io_err(io::Error::new(
            io::ErrorKind::InvalidData,
            "file is not UTF-8 text; this is not a recipients file",
        ))
    })?;
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    out.push_str(text);
    Ok(out)
}

/// Read at most `limit + 1` bytes into a zeroizing buffer sized up front, so
/// that no reallocation leaves a stray copy behind (unless the file grows
/// while we read it). A result longer than `limit` means "too large".
fn read_limited(path: &Path, limit: u64) -> io::Result<Zeroizing<Vec<u8>>> {
    read_limited_from(File::open(path)?, limit)
}

fn read_limited_from(file: File, limit: u64) -> io::Result<Zeroizing<Vec<u8>>> {
    let len = file.metadata()?.len().min(limit + 1);
    let cap = usize::try_from(len).unwrap_or(0).saturating_add(1);
    let mut buf = Zeroizing::new(Vec::with_capacity(cap));
    file.take(limit + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Encrypt to every recipient. Binary age format.
pub fn seal(recipients: &Recipients, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    if recipients.is_empty() {
        return Err(SealError::NoRecipients);
    }
    let encryptor = age::Encryptor::with_recipients(
        recipients
            .keys
            .iter()
            .map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| SealError::Encrypt(e.to_string()))?;
    // Header (~100-600 bytes per recipient) + nonce + 16-byte tag per 64 KiB chunk.
    let estimate = plaintext.len() + plaintext.len() / 4096 + 256 * recipients.len() + 512;
    let mut out = Vec::with_capacity(estimate);
    let encrypt_err = |e: io::Error| SealError::Encrypt(e.to_string());
    let mut writer = encryptor.wrap_output(&mut out).map_err(encrypt_err)?;
    writer.write_all(plaintext).map_err(encrypt_err)?;
    writer.finish().map_err(encrypt_err)?;
    Ok(out)
}

/// Identities able to open backups: an age identity file (`AGE-SECRET-KEY-1…`
/// lines, comments allowed, as written by age-keygen) or an unencrypted
/// OpenSSH private key file (ed25519 / rsa).
pub struct Identities {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    recipients: Vec<String>,
    source_desc: String,
}

impl Identities {
    /// Read and parse an identity file. The text is held in a zeroizing
    /// buffer and parsed in place.
    pub fn from_file(path: &Path) -> Result<Self, SealError> {
        let source_desc = path.display().to_string();
        let read_err = |source| SealError::ReadIdentity {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(read_err)?;
        // Checked on the open file, so a swap between check and read cannot dodge it.
        let mode = file.metadata().map_err(read_err)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SealError::IdentityPermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let bytes = read_limited_from(file, IDENTITY_FILE_LIMIT).map_err(read_err)?;
        if bytes.len() as u64 > IDENTITY_FILE_LIMIT {
            return Err(SealError::BadIdentity {
                source_desc,
                reason: "file is larger than 1 MiB; this is not an identity file".to_owned(),
            });
        }
        parse_identities(&bytes, source_desc)
    }

    /// Same parser as [`Identities::from_file`], for identities held in
    /// memory (e.g. escrowed). `source_desc` names them in errors.
    pub fn from_secret_str(text: &SecretString, source_desc: &str) -> Result<Self, SealError> {
        parse_identities(text.expose().as_bytes(), source_desc.to_owned())
    }

    /// Public recipients these identities correspond to (X25519 as `age1…`,
    /// SSH as `"ssh-ed25519 AAAA…"`).
    pub fn recipients(&self) -> Vec<String> {
        self.recipients.clone()
    }
}

impl fmt::Debug for Identities {
    /// Where they came from and how many; never the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("source", &self.source_desc)
            .field("count", &self.keys.len())
            .field("keys", &format_args!("<sensitive>"))
            .finish()
    }
}

fn parse_identities(bytes: &[u8], source_desc: String) -> Result<Identities, SealError> {
    let bad = |reason: &str| SealError::BadIdentity {
        source_desc: source_desc.clone(),
        reason: reason.to_owned(),
    };
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let head = &bytes[start..];
    if head.starts_with(b"age-encryption.org/")
        || head.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
    {
        return Err(bad(
            "is a passphrase-encrypted age file; chanvault runs unattended and needs the \
             decrypted identity (decrypt it with `age -d` into a 0600 file)",
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| {
        bad("is not UTF-8 text; expected an age identity file or an OpenSSH private key")
    })?;

    let mut out = Identities {
        keys: Vec::new(),
        recipients: Vec::new(),
        source_desc: source_desc.clone(),
    };
    if head.starts_with(b"-----BEGIN") {
        parse_ssh_identity(text, &mut out).map_err(|reason| bad(&reason))?;
    } else {
        parse_age_identity_lines(text, &mut out).map_err(|reason| bad(&reason))?;
    }
    if out.keys.is_empty() {
        return Err(bad(
            "contains no identities; expected secret key lines as written by \
             age-keygen, or an OpenSSH private key",
        ));
    }
    Ok(out)
}

/// Lines of `AGE-SECRET-KEY-1…`; blank lines and `#` comments are skipped,
/// like the age CLI. Errors name the line number, never its content.
fn parse_age_identity_lines(text: &str, out: &mut Identities) -> Result<(), String> {
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<age::x25519::Identity>() {
            Ok(identity) => {
                out.recipients.push(identity.to_public().to_string());
                out.keys.push(Box::new(identity));
            }
            Err(_) => {
                let n = n + 1;
                return Err(if starts_with_ignore_case(line, "age1") {
                    format!(
                        "line {n} is a public recipient (age1…), not an identity; \
                         use the file age-keygen wrote, which holds the secret key"
                    )
                } else if line.starts_with("ssh-") {
                    format!(
                        "line {n} is an SSH public key; use the private key file \
                         (e.g. id_ed25519, not id_ed25519.pub)"
                    )
                } else {
                    format!(
                        "line {n} is not an age secret key as written by age-keygen; \
                         the line is not shown because it may be secret"
                    )
                });
            }
        }
    }
    Ok(())
}

/// One OpenSSH (or PEM RSA) private key. Passphrase-protected keys are
/// refused: chanvault runs unattended and has nobody to ask.
fn parse_ssh_identity(text: &str, out: &mut Identities) -> Result<(), String> {
    use age::ssh::{Identity, UnsupportedKey};

    let identity = Identity::from_buffer(text.as_bytes(), None).map_err(|e| {
        if e.kind() == io::ErrorKind::Interrupted {
            "the SSH private key is incomplete (truncated file?)".to_owned()
        } else {
            "not a usable private key; chanvault accepts unencrypted OpenSSH ed25519 and \
             rsa keys, or age identity files"
                .to_owned()
        }
    })?;
    match identity {
        Identity::Unencrypted(_) => {
            // Deriving the public key is best effort: decryption does not need it.
            if let Ok(r) = age::ssh::Recipient::try_from(identity.clone()) {
                out.recipients.push(r.to_string());
            }
            out.keys.push(Box::new(identity));
            Ok(())
        }
        Identity::Encrypted(_) => Err(
            "is a passphrase-protected SSH key; chanvault runs unattended and needs an \
             unencrypted key (remove the passphrase on a copy with `ssh-keygen -p -f COPY`, \
             keep it 0600) or an age identity"
                .to_owned(),
        ),
        Identity::Unsupported(UnsupportedKey::EncryptedPem) => Err(
            "is an encrypted PEM key, which age does not support; use an unencrypted \
             OpenSSH key or an age identity"
                .to_owned(),
        ),
        Identity::Unsupported(UnsupportedKey::EncryptedSsh(cipher)) => Err(format!(
            "is an SSH key encrypted with {cipher}, which age does not support; use an \
             unencrypted OpenSSH key or an age identity"
        )),
        Identity::Unsupported(UnsupportedKey::Hardware(key_type)) => Err(format!(
            "is a hardware-backed SSH key ({key_type}), which age cannot use; use an \
             ed25519 or rsa key or an age identity"
        )),
        Identity::Unsupported(UnsupportedKey::Type(key_type)) => Err(format!(
            "SSH key type {key_type} is not supported by age; use ed25519 or rsa, or an \
             age identity"
        )),
    }
}

/// Decrypt; plaintext comes back wrapped so it is zeroized on drop.
pub fn open(identities: &Identities, ciphertext: &[u8]) -> Result<SecretBytes, SealError> {
    let source_desc = &identities.source_desc;
    let decryptor =
        age::Decryptor::new_buffered(ciphertext).map_err(|e| map_decrypt_error(e, source_desc))?;
    if decryptor.is_scrypt() {
        return Err(SealError::PassphraseEncrypted);
    }
    let mut reader = decryptor
        .decrypt(
            identities
                .keys
                .iter()
                .map(|k| k.as_ref() as &dyn age::Identity),
        )
        .map_err(|e| map_decrypt_error(e, source_desc))?;
    // The plaintext is shorter than the ciphertext, so this never reallocates
    // (a reallocation would leave an unwiped copy behind).
    let mut plaintext = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    reader.read_to_end(&mut plaintext).map_err(|e| {
        SealError::Corrupt(if e.kind() == io::ErrorKind::UnexpectedEof {
            "the payload is truncated".to_owned()
        } else {
            format!("the payload does not authenticate ({e})")
        })
    })?;
    Ok(SecretBytes::from(plaintext))
}

fn map_decrypt_error(e: age::DecryptError, source_desc: &str) -> SealError {
    use age::DecryptError as E;
    match e {
        E::NoMatchingKeys => SealError::WrongIdentity {
            source_desc: source_desc.to_owned(),
        },
        E::InvalidHeader => {
            SealError::Corrupt("the age header is malformed (or this is not an age file)".into())
        }
        E::InvalidMac => SealError::Corrupt("the header MAC does not verify".into()),
        E::DecryptionFailed => {
            SealError::Corrupt("a recipient entry in the header does not authenticate".into())
        }
        E::UnknownFormat => SealError::Corrupt(
            "not an age v1 file (unknown format, possibly from a newer age version)".into(),
        ),
        E::Io(io_err) if io_err.kind() == io::ErrorKind::UnexpectedEof => {
            SealError::Corrupt("the file is truncated inside the header".into())
        }
        E::Io(io_err) => SealError::Corrupt(format!("the header cannot be read ({io_err})")),
        other => SealError::Decrypt(other.to_string()),
    }
}

/// A fresh X25519 identity. Returns the identity file text in age-keygen's
/// format (`# created: <RFC3339>\n# public key: age1…\nAGE-SECRET-KEY-1…\n`)
/// and the public recipient string.
pub fn generate_identity() -> (SecretString, String) {
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let secret = identity.to_string();
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let parts: [&str; 7] = [
        "# created: ",
        &created,
        "\n# public key: ",
        &public,
        "\n",
        secret.expose_secret(),
        "\n",
    ];
    // Exact capacity: growing the string would leave copies of the key behind.
    let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        text.push_str(part);
    }
    (SecretString::new(text), public)
}

/// [`generate_identity`] and write it to `path` (mode 0600, must not exist
/// yet). Returns the public recipient.
pub fn write_new_identity(path: &Path) -> Result<String, SealError> {
    let (text, public) = generate_identity();
    fsutil::create_secret_file(path, text.expose().as_bytes()).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            SealError::IdentityExists {
                path: path.to_path_buf(),
            }
        } else {
            SealError::WriteIdentity {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    Ok(public)
}

#[cfg(test)]
mod tests {
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
        for kind in ["ed25519", "rsa"] {
            if let Some((key, public)) = ssh_keygen(dir.path(), kind) {
                let ids = Identities::from_file(&key).expect("ssh identity");
                // Canonical form drops the comment.
                let canonical = public.rsplit_once(' ').expect("comment").0.to_owned();
                assert_eq!(ids.recipients(), vec![canonical.clone()]);
                inline.push(public);
                ssh_ids.push((ids, canonical));
            }
        }
        let recips = Recipients::from_config(&inline, &[]).expect("recipients");
        assert_eq!(recips.len(), inline.len());
        assert_eq!(recips.public_keys()[0], pub_a);
        assert_eq!(recips.public_keys()[1], pub_b);
        for (i, (_, canonical)) in ssh_ids.iter().enumerate() {
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
        for ids in [&id_a, &id_b]
            .into_iter()
            .chain(ssh_ids.iter().map(|(ids, _)| ids))
        {
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
        let err =
            Recipients::from_config(&[], std::slice::from_ref(&missing)).expect_err("missing");
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
}
