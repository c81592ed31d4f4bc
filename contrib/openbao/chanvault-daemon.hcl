# chanvault daemon (watch / verify): least privilege.
# It may read the escrowed age identity that opens the channel backups (for
# the monthly `verify` drill), and move the audit log's anchor forward;
# nothing else: no seeds, no xprvs, no descriptors, no listing, no other
# writes, and nothing of another node.
#
# PREFIX stands for escrow.prefix: write one copy per node, e.g.
#   sed 's|PREFIX|chanvault|g' chanvault-daemon.hcl > daemon.hcl           # one node
#   sed 's|PREFIX|chanvault/alice|g' chanvault-daemon.hcl > daemon-alice.hcl  # node alice
#   bao policy write chanvault-daemon-alice daemon-alice.hcl
# Unsubstituted, the policy grants nothing of use (it names a literal "PREFIX").
# Paths assume mount "secret" and the item name "age-identity"; adjust to your
# [escrow] config (docs/many-nodes.md).
# Tokens also get OpenBao's "default" policy (lookup-self, renew-self).

path "secret/data/PREFIX/age-identity" {
  capabilities = ["read"]
}

path "secret/metadata/PREFIX/age-identity" {
  capabilities = ["read"]
}

# The audit log's anchor: every escrow access appends a record to the local
# log and writes its hash here as a new version (check-and-set). New versions
# and reads only: no delete or destroy of a version, and no metadata write
# (max_versions or delete_version_after would prune the checkpoints).
path "secret/data/PREFIX/_audit/anchor" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/PREFIX/_audit/anchor" {
  capabilities = ["read"]
}

# Optional: let the daemon's AppRole rotate its own secret-id
# (`chanvault keys rotate approle`, role "chanvault-daemon" here). It can then
# mint secret-ids for itself only, which grants nothing it does not already
# have. Uncomment to use:
#
# path "auth/approle/role/chanvault-daemon/secret-id" {
#   capabilities = ["update"]
# }
# path "auth/approle/role/chanvault-daemon/secret-id/lookup" {
#   capabilities = ["update"]
# }
# path "auth/approle/role/chanvault-daemon/secret-id-accessor/destroy" {
#   capabilities = ["update"]
# }
