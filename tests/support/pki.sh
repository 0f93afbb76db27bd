#!/bin/sh
# tests/support/pki.sh - build the test PKI of security.md "What the tests
# must show" with the openssl CLI (OpenSSL 3.0 or later).
#
#   pki.sh DIR                              base PKI (idempotent)
#   pki.sh DIR issue NAME SPIFFE_ID SECONDS extra short-lived leaf
#
# Every file produced, and why, is listed in tests/support/README.md; those
# names are a contract with the tests, so do not rename them. `openssl ca`
# is used for every issued certificate because OpenSSL 3.0's `x509 -req`
# cannot set arbitrary notBefore/notAfter (expired, not-yet-valid) and
# because its database gives us revocation and CRLs for free.
#
# Output: one line on success (the directory, or the issued certificate);
# openssl's chatter goes to DIR/.ca/log and is shown only on failure.
set -eu

usage() {
	echo "usage: $0 DIR [issue NAME SPIFFE_ID SECONDS]" >&2
	exit 2
}

[ $# -ge 1 ] || usage
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
CA="$DIR/.ca"
CNF="$CA/openssl.cnf"
LOG="$CA/log"
STAMP="$DIR/.pki-v1"
# The config expands these at load time, so they must always be defined.
SAN="URI:spiffe://unset.test/unset"
CA_DIR="$CA"
export SAN CA_DIR
# Do not let a user's OPENSSL_CONF change what we produce.
OPENSSL_CONF="$CNF"
export OPENSSL_CONF

die() {
	echo "pki.sh: $*" >&2
	exit 1
}

# run: openssl with its chatter in the log; the log is shown on failure.
run() {
	if ! openssl "$@" >>"$LOG" 2>&1; then
		cat "$LOG" >&2
		die "openssl $1 failed"
	fi
}

# ca_run CA ARGS...: `openssl ca` against the database of the CA named.
ca_run() {
	CA_DIR="$CA/$1"
	shift
	run ca -config "$CNF" "$@"
}

write_config() {
	cat >"$CNF" <<'EOF'
[ca]
default_ca = tsm_ca

[tsm_ca]
dir = $ENV::CA_DIR
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 3650
default_crl_days = 3650
policy = tsm_policy
unique_subject = no
copy_extensions = none
email_in_dn = no
crl_extensions = crl_ext

[tsm_policy]
commonName = supplied

[req]
distinguished_name = req_dn
default_md = sha256

[req_dn]

[root_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[int_ext]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

# A valid X.509-SVID leaf (SPIFFE X509-SVID spec section 4).
[leaf_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth,serverAuth
subjectAltName = $ENV::SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[leaf_server_only]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $ENV::SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[leaf_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth,serverAuth
subjectAltName = $ENV::SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[leaf_no_san]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth,serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

# Self-signed: no authorityKeyIdentifier (there is no other issuer).
[leaf_self]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth,serverAuth
subjectAltName = $ENV::SAN
subjectKeyIdentifier = hash

[crl_ext]
authorityKeyIdentifier = keyid:always
EOF
}

# ca_db NAME: an empty `openssl ca` database for the CA called NAME.
ca_db() {
	mkdir -p "$CA/$1/new"
	: >"$CA/$1/index.txt"
	echo 1000 >"$CA/$1/serial"
	echo 1000 >"$CA/$1/crlnumber"
}

# new_req NAME SUBJECT: a fresh P-256 key NAME.key and request NAME.csr.
new_req() {
	run req -new -config "$CNF" -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-noenc -keyout "$DIR/$1.key" -out "$CA/$1.csr" -subj "$2"
}

# sign ISSUER NAME EXT [ca options...]: NAME.crt issued by ISSUER.
sign() {
	issuer=$1 name=$2 ext=$3
	shift 3
	ca_run "$issuer" -batch -notext \
		-cert "$DIR/$issuer.crt" -keyfile "$DIR/$issuer.key" \
		-extensions "$ext" -in "$CA/$name.csr" -out "$DIR/$name.crt" "$@"
}

# root NAME TD: a self-signed root CA for trust domain TD.
root() {
	ca_db "$1"
	run req -x509 -new -config "$CNF" -extensions root_ext \
		-newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc \
		-keyout "$DIR/$1.key" -out "$DIR/$1.crt" \
		-subj "/CN=$2 root" -days 3650
}

# intermediate NAME ROOT TD
intermediate() {
	ca_db "$1"
	new_req "$1" "/CN=$3 intermediate"
	sign "$2" "$1" int_ext -days 3650
}

# leaf ISSUER NAME SAN [EXT [ca options...]]: NAME.crt/.key/.chain.pem.
leaf() {
	issuer=$1 name=$2
	SAN=$3
	ext=${4:-leaf_ext}
	shift 3
	[ $# -gt 0 ] && shift
	new_req "$name" "/CN=$name"
	sign "$issuer" "$name" "$ext" "$@"
	cat "$DIR/$name.crt" "$DIR/$issuer.crt" >"$DIR/$name.chain.pem"
	SAN="URI:spiffe://unset.test/unset"
}

# crl CA OUT [ca options...]
crl() {
	ca=$1 out=$2
	shift 2
	ca_run "$ca" -gencrl \
		-cert "$DIR/$ca.crt" -keyfile "$DIR/$ca.key" -out "$DIR/$out" "$@"
}

domain() {
	root "$1-root" "$2"
	intermediate "$1-int" "$1-root" "$2"
	cp "$DIR/$1-root.crt" "$DIR/bundle-$1.pem"
}

good_leaves() {
	leaf a-int a-pub URI:spiffe://td-a.test/pub
	leaf a-int a-sub URI:spiffe://td-a.test/sub
	leaf a-int a-sub2 URI:spiffe://td-a.test/sub2
	leaf a-int a-pub-rot URI:spiffe://td-a.test/pub
	leaf b-int b-pub URI:spiffe://td-b.test/pub
}

bad_leaves() {
	leaf a-int a-expired URI:spiffe://td-a.test/expired leaf_ext \
		-startdate 20200101000000Z -enddate 20210101000000Z
	leaf a-int a-notyet URI:spiffe://td-a.test/notyet leaf_ext \
		-startdate 20900101000000Z -enddate 20910101000000Z
	leaf a-int a-revoked URI:spiffe://td-a.test/revoked
	leaf a-int a-wrong-eku URI:spiffe://td-a.test/wrong-eku leaf_server_only
	leaf a-int a-ca-leaf URI:spiffe://td-a.test/ca-leaf leaf_ca
	leaf a-int a-bad-spiffe URI:spiffe://TD-A.test/bad-spiffe
	leaf a-int a-two-uris \
		"URI:spiffe://td-a.test/two-uris-1,URI:spiffe://td-a.test/two-uris-2"
	# The CN imitates a-pub: a verifier that falls back to it is caught.
	new_req a-no-uri '/CN=spiffe:\/\/td-a.test\/pub'
	sign a-int a-no-uri leaf_no_san
	cat "$DIR/a-no-uri.crt" "$DIR/a-int.crt" >"$DIR/a-no-uri.chain.pem"
	leaf b-int b-forged-a URI:spiffe://td-a.test/pub
	self_signed
}

self_signed() {
	SAN=URI:spiffe://td-a.test/self-signed
	run req -x509 -new -config "$CNF" -extensions leaf_self \
		-newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc \
		-keyout "$DIR/a-self-signed.key" -out "$DIR/a-self-signed.crt" \
		-subj "/CN=a-self-signed" -days 3650
	SAN="URI:spiffe://unset.test/unset"
	cp "$DIR/a-self-signed.crt" "$DIR/a-self-signed.chain.pem"
}

# The empty and stale CRLs come before the revocation, the listing one after.
crls() {
	crl a-root a-root.crl.pem
	crl b-root b-root.crl.pem
	crl b-int b-int.crl.pem
	crl a-int a-int-empty.crl.pem
	crl a-int a-int-stale.crl.pem \
		-crl_lastupdate 20200101000000Z -crl_nextupdate 20200201000000Z
	ca_run a-int -cert "$DIR/a-int.crt" \
		-keyfile "$DIR/a-int.key" -revoke "$DIR/a-revoked.crt" \
		-crl_reason keyCompromise
	crl a-int a-int.crl.pem
	cat "$DIR/a-root.crl.pem" "$DIR/a-int.crl.pem" >"$DIR/crl-a.pem"
	cat "$DIR/a-root.crl.pem" "$DIR/a-int-empty.crl.pem" >"$DIR/crl-a-empty.pem"
	cat "$DIR/a-root.crl.pem" "$DIR/a-int-stale.crl.pem" >"$DIR/crl-a-stale.pem"
	cat "$DIR/b-root.crl.pem" "$DIR/b-int.crl.pem" >"$DIR/crl-b.pem"
}

build() {
	rm -rf "$CA"
	mkdir -p "$CA"
	write_config
	domain a td-a.test
	domain b td-b.test
	cat "$DIR/a-root.crt" "$DIR/b-root.crt" >"$DIR/bundle-ab.pem"
	good_leaves
	bad_leaves
	crls
	rm -f "$CA"/*.csr
	: >"$STAMP"
}

# issue NAME SPIFFE_ID SECONDS: a valid leaf that expires SECONDS from now.
issue() {
	echo "$1" | grep -Eq '^[a-z0-9-]+$' || die "bad NAME '$1'"
	echo "$3" | grep -Eq '^[0-9]+$' || die "bad SECONDS '$3'"
	case $2 in
	spiffe://td-a.test/*) issuer=a-int ;;
	spiffe://td-b.test/*) issuer=b-int ;;
	*) die "SPIFFE_ID '$2' is not in td-a.test or td-b.test" ;;
	esac
	now=$(date +%s)
	from=$(date -u -d "@$((now - 60))" +%Y%m%d%H%M%SZ)
	to=$(date -u -d "@$((now + $3))" +%Y%m%d%H%M%SZ)
	: >"$LOG"
	leaf "$issuer" "$1" "URI:$2" leaf_ext -startdate "$from" -enddate "$to"
	rm -f "$CA/$1.csr"
	echo "$DIR/$1.crt"
}

# Parallel tests may share DIR: serialise on a lock (fd 9).
exec 9>"$DIR/.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9
fi
if [ ! -f "$STAMP" ]; then
	build
fi
if [ $# -eq 1 ]; then
	echo "$DIR"
	exit 0
fi
if [ $# -ne 5 ] || [ "$2" != issue ]; then
	usage
fi
issue "$3" "$4" "$5"
