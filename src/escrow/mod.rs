//! Key escrow in OpenBao KV v2: typed, validated key material, check-and-set
//! writes, envelope sealing, rotation in OpenBao, and a hash-chained audit
//! log. Its settings are `config::escrow`; re-sealing the spool's backup for
//! an identity rotation is `crate::rotate`.
//!
//! `material` validates what goes in; `kv` talks to OpenBao; `audit` keeps the
//! local tamper-evident record and `anchor` its checkpoints in OpenBao;
//! `store` is the audited API that ties them together and that the `keys`
//! commands call.

pub mod anchor;
pub mod audit;
pub mod kv;
pub mod material;
pub mod store;
