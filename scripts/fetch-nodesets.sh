#!/bin/sh
# The OPC UA nodeset the FC server loads (cellctl/fc/server.py): Opc.Ua.PackML.NodeSet2.xml, OPC 30050 PackML,
# from the OPC Foundation's UA-Nodeset (OPC Foundation MIT License 1.00, in the file's header), as shipped in the
# npm package node-opcua-nodesets at a pinned version, checked against a pinned sha256 and extracted to
# cellctl/fc/nodesets/ (git-ignored). `make test` and `make run` run it; a file already there with the right
# sha256 is kept. Needs npm (Debian: apt-get install npm; scripts/ensure-sysdeps.sh --test installs it) and tar.
set -eu
VERSION=2.185.0
XML=Opc.Ua.PackML.NodeSet2.xml
SHA256=79016b1468d3288da36fca3604ad5439ebae7fdfca87e4f8def2aa1999e49adf
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/cellctl/fc/nodesets"

matches() {  # matches FILE: it is there and has the pinned sha256
    [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA256" ]
}

if matches "$dest/$XML"; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm is needed to fetch $XML (node-opcua-nodesets@$VERSION): sudo apt-get install npm" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent --no-fund --no-audit "node-opcua-nodesets@$VERSION" >/dev/null)
tar -xzf "$tmp/node-opcua-nodesets-$VERSION.tgz" -C "$tmp" "package/nodesets/$XML"
if ! matches "$tmp/package/nodesets/$XML"; then
    echo "error: $XML from node-opcua-nodesets@$VERSION does not have the pinned sha256 $SHA256" >&2
    exit 1
fi
mkdir -p "$dest"
cp "$tmp/package/nodesets/$XML" "$dest/$XML.part"
mv "$dest/$XML.part" "$dest/$XML"
echo "fetched $XML (node-opcua-nodesets@$VERSION, sha256 verified) into cellctl/fc/nodesets/"
