//! age X25519 identities, as written by age-keygen.

use super::Material;
use super::error::{MaterialError, truncate_for_message};
use super::facts::PublicFacts;
use super::kind::Kind;
use crate::secret::SecretString;

pub(super) fn parse_age_identity(text: &str) -> Result<Material, MaterialError> {
    let kind = Kind::AgeIdentity;
    let bad = |reason: String| MaterialError::BadAgeIdentity { reason };
    let mut found: Option<(usize, age::x25519::Identity)> = None;
    let mut declared_public: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let n = n + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            // age-keygen writes "# public key: age1…"; check it if present.
            if let Some(p) = comment.trim().strip_prefix("public key:") {
                declared_public = Some(p.trim().to_owned());
            }
            continue;
        }
        if line.starts_with("-----BEGIN") {
            return Err(bad(format!(
                "line {n} starts a PEM/SSH private key; escrow only age X25519 identities \
                 (AGE-SECRET-KEY-1…, from age-keygen)"
            )));
        }
        if line.starts_with("age1") {
            return Err(bad(format!(
                "line {n} is a public recipient (age1…), not an identity; escrow the file \
                 age-keygen wrote, which holds the secret key"
            )));
        }
        let identity = line.parse::<age::x25519::Identity>().map_err(|_| {
            bad(format!(
                "line {n} is not a valid age identity (expected AGE-SECRET-KEY-1…, as written by \
                 age-keygen; mistyped or truncated?)"
            ))
        })?;
        if let Some((first, _)) = found {
            return Err(bad(format!(
                "line {n} holds a second identity (the first is on line {first}); escrow one \
                 identity per item"
            )));
        }
        found = Some((n, identity));
    }
    let Some((_, identity)) = found else {
        return Err(bad(
            "contains no AGE-SECRET-KEY-1… line; expected an age identity or the file \
             age-keygen wrote"
                .to_owned(),
        ));
    };
    let recipient = identity.to_public().to_string();
    if let Some(declared) = declared_public
        && declared != recipient
    {
        return Err(bad(format!(
            "the file's \"# public key:\" comment says {} but the secret key belongs to \
             {recipient}; the file was edited or mixed up",
            truncate_for_message(&declared)
        )));
    }
    let canonical = {
        use age::secrecy::ExposeSecret;
        SecretString::new(identity.to_string().expose_secret().to_owned())
    };
    Ok(Material {
        kind,
        network: None,
        public: PublicFacts {
            kind: kind.to_string(),
            recipient: Some(recipient),
            ..PublicFacts::default()
        },
        secret: Some(canonical),
        passphrase: None,
        account: None,
        descriptor_keys: Vec::new(),
    })
}
