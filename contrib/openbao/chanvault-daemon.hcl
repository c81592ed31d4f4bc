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
