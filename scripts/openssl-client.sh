#!/usr/bin/env bash
# A client of the EKG HTTP binding made of openssl, curl and the shell only: it shares no
# code with ekg. From docs/protocol.md alone it makes a key request (alice, for bob and
# carol), checks the ticket, asks for the key as bob and as carol, refuses nothing it should
# accept, and checks that a second release to bob is refused (policy once).
#
#   scripts/openssl-client.sh PKI_DIR GATEKEEPER_URL [WORK_DIR]
#
# PKI_DIR is an `ekg serve --demo` pki/ directory; GATEKEEPER_URL its gatekeeper URI.
# For an https:// URL whose certificate no system anchor signs, set EKG_CACERT=FILE (PEM).
# Exit 0 when every step did what the protocol says, 1 otherwise (with the step).
set -euo pipefail
PKI=$(cd "${1:?PKI_DIR}" && pwd)
URL=${2:?GATEKEEPER_URL}
WORK=${3:-$(mktemp -d)}
mkdir -p "$WORK"
cd "$WORK"
URL=${URL%/}/
fail() { echo "openssl-client: FAIL: $*" >&2; exit 1; }
step() { echo "openssl-client: $*"; }
CURL=(curl -sS)
if [ -n "${EKG_CACERT:-}" ]; then CURL+=(--cacert "$EKG_CACERT"); fi

# DER: one TLV from a tag (hex) and the value read from stdin.
tlv() {
  local tag=$1 body len
  body=$(mktemp)
  cat > "$body"
  len=$(stat -c %s "$body")
  printf "\\x$tag"
  if [ "$len" -lt 128 ]; then printf "\\x$(printf %02x "$len")"
  elif [ "$len" -lt 256 ]; then printf "\\x81\\x$(printf %02x "$len")"
  elif [ "$len" -lt 65536 ]; then printf "\\x82\\x$(printf %02x $((len >> 8)))\\x$(printf %02x $((len & 255)))"
  else printf "\\x83\\x$(printf %02x $((len >> 16)))\\x$(printf %02x $(((len >> 8) & 255)))\\x$(printf %02x $((len & 255)))"
  fi
  cat "$body"
  rm -f "$body"
}
hex() { od -An -v -tx1 | tr -d ' \n'; }   # bytes on stdin -> lowercase hex
ia5() { printf %s "$1" | tlv 16; }
now_gt() { date -u +%Y%m%d%H%M%SZ; }

# POST a DER file; the body to $3, the status on stdout.
post() {
  "${CURL[@]}" -o "$3" -w '%{http_code}' -H 'Content-Type: application/cms' --data-binary @"$2" "$URL$1"
}

# The elements at a depth of an asn1parse listing: "offset total_length" per line.
elements_at() {
  openssl asn1parse -inform DER -in "$1" | awk -v d="d=$2" '
    { split($0, a, ":"); off = a[1] + 0; hl = 0; l = 0
      if (match($0, /hl= *[0-9]+/)) { hl = substr($0, RSTART + 3, RLENGTH - 3) + 0 }
      if (match($0, / l= *[0-9]+/)) { l = substr($0, RSTART + 3, RLENGTH - 3) + 0 }
      if (index($0, d " ") > 0) print off, hl + l }'
}
cut_der() { dd if="$1" of="$4" bs=1 skip="$2" count="$3" status=none; }

# The OCTET STRINGs of a KeyDelivery: key id (16 bytes) and key (32 bytes), as hex.
delivery_fields() {
  openssl asn1parse -inform DER -in "$1" | awk -F'[:]' '/OCTET STRING/ && n < 2 { v[n++] = $NF } END { print v[0], v[1] }'
}

step "1. alice's key request for bob and carol (signed with openssl cms -sign)"
{
  printf '\x02\x01\x00'
  ia5 alice@example.com
  { ia5 bob@example.org; ia5 carol@example.com; } | tlv 30
  openssl rand 16 | tlv 04
  printf %s "$(now_gt)" | tlv 18
} | tlv 30 > key-request.content.der
openssl cms -sign -binary -nodetach -outform DER -md sha256 -nosmimecap \
  -econtent_type 1.3.6.1.4.1.99999.1.1.1 \
  -signer "$PKI/example.com/alice.pem" -inkey "$PKI/example.com/alice.key" \
  -in key-request.content.der -out key-request.der
status=$(post key-request key-request.der issuance.der)
[ "$status" = 200 ] || fail "key request: HTTP $status $(cat issuance.der)"

step "2. the issuance: grant and ticket (an id-ekg-ct-issuance ContentInfo)"
read -r g_off g_len < <(elements_at issuance.der 3 | sed -n 1p)
read -r t_off t_len < <(elements_at issuance.der 3 | sed -n 2p)
cut_der issuance.der "$g_off" "$g_len" grant.der
cut_der issuance.der "$t_off" "$t_len" ticket.der
openssl cms -verify -inform DER -in ticket.der -CAfile "$PKI/anchors.pem" -binary -out ticket-info.der 2>/dev/null \
  || fail "the ticket's signature does not verify"
openssl cms -decrypt -inform DER -in grant.der -recip "$PKI/example.com/alice.pem" -inkey "$PKI/example.com/alice.key" \
  -binary -out grant-delivery.der || fail "alice cannot open her grant"
read -r key_id key < <(delivery_fields grant-delivery.der)
[ ${#key_id} = 32 ] && [ ${#key} = 64 ] || fail "the grant's key delivery: key id $key_id, key $key"
# C2: the ticket carries alice's request byte for byte, and names this grant.
info_hex=$(hex < ticket-info.der)
[[ "$info_hex" == *"$(hex < key-request.der)"* ]] || fail "the ticket does not carry the request byte for byte"
[[ "$info_hex" == *"$(openssl dgst -sha256 -binary grant.der | hex)"* ]] || fail "the ticket does not name the grant's digest"

release() {
  local who=$1 org=$2 out=$3
  {
    printf '\x02\x01\x00'
    cat ticket.der
    openssl rand 16 | tlv 04
    printf %s "$(now_gt)" | tlv 18
  } | tlv 30 > "rr-$who.content.der"
  openssl cms -sign -binary -nodetach -outform DER -md sha256 -nosmimecap \
    -econtent_type 1.3.6.1.4.1.99999.1.1.3 \
    -signer "$PKI/$org/$who.pem" -inkey "$PKI/$org/$who.key" \
    -in "rr-$who.content.der" -out "rr-$who.der"
  post release-request "rr-$who.der" "$out"
}

fetch() {
  local name=$1 org=$2 status
  status=$(release "$name" "$org" "release-$name.der")
  [ "$status" = 200 ] || fail "$name's release: HTTP $status $(cat "release-$name.der")"
  openssl cms -decrypt -inform DER -in "release-$name.der" -recip "$PKI/$org/$name.pem" -inkey "$PKI/$org/$name.key" \
    -binary -out "signed-$name.der" || fail "$name cannot open the release"
  openssl cms -verify -inform DER -in "signed-$name.der" -CAfile "$PKI/anchors.pem" -binary -out "delivery-$name.der" \
    2>/dev/null || fail "the release to $name is not signed by the gatekeeper"
  read -r got_id got_key < <(delivery_fields "delivery-$name.der")
  [ "$got_id" = "$key_id" ] && [ "$got_key" = "$key" ] || fail "$name received another key"
}

step "3. bob countersigns the ticket and gets the key"
fetch bob example.org

step "4. bob asks again: refused under policy once (409 already_released, problem+json)"
status=$(release bob example.org again.json)
[ "$status" = 409 ] || fail "a second release to bob: HTTP $status"
grep -q '"code":"already_released"' again.json || fail "the refusal's code: $(cat again.json)"

step "5. carol, the last listed recipient, gets the key; the key is then destroyed (410)"
fetch carol example.com
status=$(release bob example.org gone.json)
[ "$status" = 410 ] && grep -q '"code":"key_destroyed"' gone.json || fail "after the last release: HTTP $status $(cat gone.json)"

step "6. a request that is not application/cms: 415"
status=$("${CURL[@]}" -o bad.json -w '%{http_code}' -H 'Content-Type: text/plain' --data-binary @rr-bob.der "${URL}release-request")
[ "$status" = 415 ] || fail "wrong media type: HTTP $status"

echo "openssl-client: ok (key id $key_id)"
