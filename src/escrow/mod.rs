//! Key escrow in OpenBao KV v2: typed, validated key material, check-and-set
//! writes, envelope sealing, rotation, and a hash-chained audit log.

pub mod material;
