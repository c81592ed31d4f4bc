//! age sealing of channel backups.
//!
//! A backup is only useful to someone who can open it after the node's disk is
//! gone, so it is sealed with age (binary format, no armor) to recipients kept
//! elsewhere: X25519 keys (`age1…`) and SSH keys (`ssh-ed25519`, `ssh-rsa`).
//! The output is byte-for-byte what the stock `age` CLI produces and accepts,
//! so recovery never depends on chanvault itself.
//!
//! Opening is with age X25519 and ssh-ed25519 identities only: RSA
//! decryption in the `rsa` crate leaks timing (the Marvin attack,
//! RUSTSEC-2023-0071), so an ssh-rsa *identity* is refused with one line
//! that names the file. Sealing *to* an ssh-rsa recipient is RSA encryption
//! with the public key, which the advisory does not concern.
//!
//! Secret habits: identity text is read into zeroizing buffers and parsed in
//! place, decrypted plaintext comes back as [`SecretBytes`], [`Identities`]
//! has no `Debug` that shows key material, and no error message ever echoes a
//! line that might be a secret key (errors name the file and line instead).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::fsutil;
use crate::secret::{SecretBytes, SecretString};

/// Largest identity file we will read. Real ones are < 20 KiB (a 16384-bit
/// RSA key); anything bigger is the wrong file, and reading it whole into
/// memory would be pointless.
pub const IDENTITY_FILE_LIMIT: u64 = 1 << 20;

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

/// Whether `bytes` start like an age file (binary or armored).
pub fn is_age_file(bytes: &[u8]) -> bool {
    bytes.starts_with(b"age-encryption.org/")
        || bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
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
/// OpenSSH ed25519 private key file (ssh-rsa is refused, see the module
/// docs).
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
        if let Some(mode) = crate::fsutil::too_open(&file).map_err(read_err)? {
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
    if is_age_file(head) {
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

/// Why an ssh-rsa private key is refused as an identity.
const SSH_RSA_IDENTITY: &str = "is an ssh-rsa private key, which chanvault does not decrypt with: \
     RSA decryption is open to the Marvin timing attack (RUSTSEC-2023-0071); use an age X25519 \
     identity (age-keygen) or an ssh-ed25519 key. ssh-rsa stays fine as a recipient: a backup \
     sealed to it opens with `age -d -i` on the machine that holds the key";

/// One OpenSSH ed25519 private key. Passphrase-protected keys are refused:
/// chanvault runs unattended and has nobody to ask. ssh-rsa keys (OpenSSH
/// or PEM) are refused: [`SSH_RSA_IDENTITY`].
fn parse_ssh_identity(text: &str, out: &mut Identities) -> Result<(), String> {
    use age::ssh::{Identity, UnsupportedKey};

    let identity = Identity::from_buffer(text.as_bytes(), None).map_err(|e| {
        if e.kind() == io::ErrorKind::Interrupted {
            "the SSH private key is incomplete (truncated file?)".to_owned()
        } else {
            "not a usable private key; chanvault accepts unencrypted OpenSSH ed25519 \
             keys, or age identity files"
                .to_owned()
        }
    })?;
    match identity {
        Identity::Unencrypted(_) => {
            use age::ssh::{ParseRecipientKeyError, Recipient};
            let recipient = Recipient::try_from(identity.clone());
            if matches!(
                recipient,
                Ok(Recipient::SshRsa(..)) | Err(ParseRecipientKeyError::RsaModulusTooLarge)
            ) {
                return Err(SSH_RSA_IDENTITY.to_owned());
            }
            // Deriving the public key is best effort: decryption does not need it.
            if let Ok(r) = recipient {
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
             ssh-ed25519 key or an age identity"
        )),
        Identity::Unsupported(UnsupportedKey::Type(key_type)) => Err(format!(
            "SSH key type {key_type} is not supported for opening backups; use ssh-ed25519 \
             or an age identity"
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
mod tests;
