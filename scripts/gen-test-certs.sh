#!/usr/bin/env bash
# Makes the TEST-ONLY TLS files in testdata/tls: a CA and a server certificate
# signed by it. The keys are public on purpose and protect nothing; they exist
# so that `--use_tls` can be exercised on loopback and in containers.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/testdata/tls"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 36500 \
  -subj "/CN=polyglot-grpc-interop test CA (test only)" \
  -keyout "$tmp/ca.key" -out "$out/ca.pem" 2>/dev/null

openssl req -newkey rsa:2048 -nodes \
  -subj "/CN=*.test.google.fr" \
  -keyout "$out/server.key" -out "$tmp/server.csr" 2>/dev/null

cat > "$tmp/ext.cnf" <<'EXT'
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:*.test.google.fr, DNS:foo.test.google.fr, DNS:localhost, IP:127.0.0.1, DNS:rust-server, DNS:go-server, DNS:python-server
EXT
openssl x509 -req -in "$tmp/server.csr" -CA "$out/ca.pem" -CAkey "$tmp/ca.key" \
  -set_serial 0x1d0c -days 36500 -extfile "$tmp/ext.cnf" -out "$out/server.pem" 2>/dev/null
# The CA key is thrown away: nothing else can ever be signed with it.
echo "wrote $out/{ca.pem,server.pem,server.key}"
