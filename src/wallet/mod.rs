//! lnd's wallet seed: the aezeed cipher seed (`aezeed`), the AEZ cipher it
//! is made with (`aez`), and the keys lnd derives from it.

pub mod aez;
pub mod aezeed;
