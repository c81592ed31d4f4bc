# chanvault operator (`chanvault keys put/get/list/history/verify/rotate`).
# KV v2 splits one item over several API paths; each is granted on its own.
#
# PREFIX stands for escrow.prefix: write one copy per node, e.g.
#   sed 's|PREFIX|chanvault/alice|g' chanvault-operator.hcl > operator-alice.hcl
# or, for one operator of every node under chanvault/ ("+" is one path segment):
#   sed 's|PREFIX|chanvault/+|g' chanvault-operator.hcl > operator-all.hcl
# Unsubstituted, the policy grants nothing of use (it names a literal "PREFIX").
# Paths assume mount "secret" (docs/many-nodes.md).

# Item versions: create (cas=0), new versions (--replace, cas=N), read any version.
path "secret/data/PREFIX/*" {
  capabilities = ["create", "read", "update"]
}

# Metadata: list items, read history, write custom_metadata (public facts).
path "secret/metadata/PREFIX/*" {
  capabilities = ["create", "read", "update", "list"]
}

# Soft-delete and undelete versions (recoverable).
path "secret/delete/PREFIX/*" {
  capabilities = ["update"]
}
path "secret/undelete/PREFIX/*" {
  capabilities = ["update"]
}

# Destroy versions for good (`keys rotate age-identity NAME --destroy-old`).
path "secret/destroy/PREFIX/*" {
  capabilities = ["update"]
}

# Deliberately absent: deleting a whole item with all its history
# ("delete" on secret/metadata/PREFIX/*). Do that as an administrator.

# The audit log's anchor (PREFIX/_audit/anchor, written after every
# escrow access): new versions and reads only. These exact paths win over the
# globs above, so the operator cannot delete or destroy a checkpoint, nor
# write its metadata (max_versions or delete_version_after would prune them).
path "secret/data/PREFIX/_audit/anchor" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/PREFIX/_audit/anchor" {
  capabilities = ["read"]
}
path "secret/delete/PREFIX/_audit/anchor" {
  capabilities = ["deny"]
}
path "secret/undelete/PREFIX/_audit/anchor" {
  capabilities = ["deny"]
}
path "secret/destroy/PREFIX/_audit/anchor" {
  capabilities = ["deny"]
}
