#!/usr/bin/env bash
# Makes the TEST-ONLY TLS files in testdata/tls: a CA, a server certificate and
# a client certificate signed by it, and a second CA with a client certificate
# of its own (for the refusal cases). The keys are public on purpose and
# protect nothing; they exist so that TLS and mutual TLS can be exercised on
# loopback and in containers. Both CA keys are thrown away after signing.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/testdata/tls"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ca NAME FILE: a self-signed CA; its key stays in $tmp.
ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 36500 \
    -subj "/CN=$1" -keyout "$tmp/$2.key" -out "$out/$2.pem" 2>/dev/null
}

# leaf CA NAME CN USAGE SAN: a certificate NAME.pem/NAME.key signed by CA.
leaf() {
  local signer=$1 name=$2 cn=$3 usage=$4 san=${5:-}
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" \
    -keyout "$out/$name.key" -out "$tmp/$name.csr" 2>/dev/null
  {
    echo "basicConstraints = CA:FALSE"
    echo "keyUsage = digitalSignature, keyEncipherment"
    echo "extendedKeyUsage = $usage"
    if [ -n "$san" ]; then echo "subjectAltName = $san"; fi
  } > "$tmp/$name.cnf"
  openssl x509 -req -in "$tmp/$name.csr" -CA "$out/$signer.pem" -CAkey "$tmp/$signer.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 36500 -extfile "$tmp/$name.cnf" \
    -out "$out/$name.pem" 2>/dev/null
}

ca "polyglot-grpc-interop test CA (test only)" ca
ca "polyglot-grpc-interop other CA (test only)" other-ca
leaf ca server "*.test.google.fr" serverAuth \
  "DNS:*.test.google.fr, DNS:foo.test.google.fr, DNS:localhost, IP:127.0.0.1, DNS:rust-server, DNS:go-server, DNS:python-server, DNS:go-official-server"
leaf ca client "interop-test-client (test only)" clientAuth
leaf other-ca other-client "interop-test-client, other CA (test only)" clientAuth
echo "wrote $out/{ca,server,client,other-ca,other-client}.pem and the keys of the leaves"
