//! The age envelope around secret fields: ASCII-armored, so the stock
//! `age -d` opens them.

use super::EscrowError;
use crate::seal::{Identities, Recipients};
use crate::secret::SecretString;

/// age-encrypt to the offline recipients, ASCII-armored.
pub(super) fn armor_seal(r: &Recipients, s: &SecretString) -> Result<String, EscrowError> {
    let bin = crate::seal::seal(r, s.expose().as_bytes())?;
    let mut out = Vec::with_capacity(bin.len() * 4 / 3 + 128);
    {
        use std::io::Write;
        let mut w =
            age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                .map_err(|e| EscrowError::Invalid(format!("cannot armor: {e}")))?;
        w.write_all(&bin)
            .map_err(|e| EscrowError::Invalid(format!("cannot armor: {e}")))?;
        w.finish()
            .map_err(|e| EscrowError::Invalid(format!("cannot armor: {e}")))?;
    }
    String::from_utf8(out).map_err(|e| EscrowError::Invalid(format!("armor: {e}")))
}

/// Open an armored envelope.
pub(super) fn armor_open(ids: &Identities, s: &SecretString) -> Result<SecretString, EscrowError> {
    use std::io::Read;
    let mut bin = Vec::new();
    age::armor::ArmoredReader::new(s.expose().as_bytes())
        .read_to_end(&mut bin)
        .map_err(|e| EscrowError::Invalid(format!("envelope is not age armor: {e}")))?;
    let plain = crate::seal::open(ids, &bin)?;
    let text = std::str::from_utf8(plain.expose())
        .map_err(|_| EscrowError::Invalid("envelope content is not UTF-8".into()))?;
    Ok(SecretString::new(text.to_owned()))
}
