//! lnd's multi-channel backup (`chanbackup.Multi`): the plaintext of the
//! `channel.backup` file and of `MultiChanBackup.multi_chan_backup`.
//!
//! `version (1 byte, 0) || count (u32 BE) || Single × count`. lnd stops after
//! `count` Singles and ignores anything after them; its writer leaves
//! nothing, so we refuse left-over bytes.

use super::single::{self, MIN_SINGLE_LEN, Single};
use super::wire::{Cursor, Kind, ParseError};

/// lnd's `DefaultMultiVersion`, the only one there is.
pub const MULTI_VERSION: u8 = 0;

/// Every channel in one backup, in blob order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multi {
    pub singles: Vec<Single>,
}

impl Multi {
    /// Parse a decrypted Multi. The channel count is checked against what
    /// the remaining bytes can hold before anything is allocated for it.
    pub fn parse(plain: &[u8]) -> Result<Multi, ParseError> {
        let mut c = Cursor::new(plain, None);
        let version = c.u8("version")?;
        if version != MULTI_VERSION {
            return Err(c.err("version", Kind::UnknownMultiVersion(version)));
        }
        let count = c.u32("count")?;
        let max = c.left() / MIN_SINGLE_LEN;
        let fits = usize::try_from(count).is_ok_and(|n| n <= max);
        if !fits {
            let left = c.left();
            return Err(c.err("count", Kind::ImpossibleCount { count, left, max }));
        }
        let mut singles = Vec::with_capacity(max.min(count as usize));
        for i in 0..count {
            c.set_single(Some(i));
            singles.push(single::read(&mut c)?);
        }
        c.set_single(None);
        c.finish("after the last single")?;
        Ok(Multi { singles })
    }
}
