#!/usr/bin/env bash
# A development update CA and a bundle signing certificate, made once on the build host:
#
#   image-build/rauc/dev-keys.sh DIR
#
#   DIR/ca.cert.pem       the keyring: goes into the image as /etc/rauc/keyring.pem
#   DIR/ca.key.pem        the CA's key: signs the signing certificate, never leaves DIR
#   DIR/signing.cert.pem  signs bundles (extendedKeyUsage=codeSigning, as system.conf's
#   DIR/signing.key.pem   check-purpose=codesign wants)
#
# For development and tests only: an image that trusts this CA accepts any bundle made on this
# build host. Release images are built with the project's own update CA and signing key
# (ZIZHU_RAUC_KEYRING, ZIZHU_RAUC_CERT, ZIZHU_RAUC_KEY: README.md, "Signing keys").
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
[ -f "$dir/ca.cert.pem" ] && [ -f "$dir/signing.cert.pem" ] && [ -f "$dir/signing.key.pem" ] \
  && exit 0
rm -rf "$dir"
mkdir -p "$dir"
chmod 0700 "$dir"
cd "$dir"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout ca.key.pem -out ca.cert.pem -days 3650 \
  -subj "/O=Zizhu development (not for release)/CN=Zizhu development update CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req "${ec[@]}" -keyout signing.key.pem -out signing.csr \
  -subj "/O=Zizhu development (not for release)/CN=Zizhu development bundle signing" 2>/dev/null
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=codeSigning" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" \
  > signing.ext
openssl x509 -req -in signing.csr -CA ca.cert.pem -CAkey ca.key.pem -CAcreateserial \
  -days 1825 -extfile signing.ext -out signing.cert.pem 2>/dev/null
rm -f signing.csr signing.ext ca.cert.srl
echo "dev-keys: development update CA and signing key in $dir"
