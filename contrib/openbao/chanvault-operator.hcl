# chanvault operator (`chanvault keys put/get/list/history/verify/rotate`).
# KV v2 splits one item over several API paths; each is granted on its own.

# Item versions: create (cas=0), new versions (--replace, cas=N), read any version.
path "secret/data/chanvault/*" {
  capabilities = ["create", "read", "update"]
}

# Metadata: list items, read history, write custom_metadata (public facts).
path "secret/metadata/chanvault/*" {
  capabilities = ["create", "read", "update", "list"]
}

# Soft-delete and undelete versions (recoverable).
path "secret/delete/chanvault/*" {
  capabilities = ["update"]
}
path "secret/undelete/chanvault/*" {
  capabilities = ["update"]
}

# Destroy versions for good (`keys rotate age-identity NAME --destroy-old`).
path "secret/destroy/chanvault/*" {
  capabilities = ["update"]
}

# Deliberately absent: deleting a whole item with all its history
# ("delete" on secret/metadata/chanvault/*). Do that as an administrator.

# The audit log's anchor (chanvault/_audit/anchor, written after every
# escrow access): new versions and reads only. These exact paths win over the
# globs above, so the operator cannot delete or destroy a checkpoint, nor
# write its metadata (max_versions or delete_version_after would prune them).
path "secret/data/chanvault/_audit/anchor" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/chanvault/_audit/anchor" {
  capabilities = ["read"]
}
path "secret/delete/chanvault/_audit/anchor" {
  capabilities = ["deny"]
}
path "secret/undelete/chanvault/_audit/anchor" {
  capabilities = ["deny"]
}
path "secret/destroy/chanvault/_audit/anchor" {
  capabilities = ["deny"]
}
