# Example OpenBao server config fragment for a chanvault homelab.
# OpenBao >= 2.3.2 refuses to create audit devices through the API; declare
# the file audit device here. It is OpenBao's own, independent record of every
# escrow access (chanvault keeps a second, hash-chained one in its state_dir).
# Secret values are stored as JSON strings, so this log shows them only as
# HMACs (hmac-sha256:…).

audit "file" "chanvault" {
  description = "every request and response, secrets HMAC'd"
  options {
    file_path = "/var/log/openbao/audit.log"
    mode      = "0600"
  }
}

storage "raft" {
  path    = "/var/lib/openbao"
  node_id = "bao-1"
}

listener "tcp" {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/etc/openbao/tls/bao.crt"
  tls_key_file  = "/etc/openbao/tls/bao.key"
}

api_addr     = "https://bao.home.arpa:8200"
cluster_addr = "https://bao.home.arpa:8201"
