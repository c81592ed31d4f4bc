# chanvault daemon (watch / verify): least privilege.
# It may read the escrowed age identity that opens the channel backups (for
# the monthly `verify` drill) and nothing else: no seeds, no xprvs, no
# descriptors, no listing, no writes. Paths assume mount "secret", prefix
# "chanvault" and the item name "age-identity"; adjust to your [escrow] config.
# Tokens also get OpenBao's "default" policy (lookup-self, renew-self).

path "secret/data/chanvault/age-identity" {
  capabilities = ["read"]
}

path "secret/metadata/chanvault/age-identity" {
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
