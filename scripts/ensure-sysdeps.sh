#!/bin/sh
# System libraries the Python wheels need (Debian package names).
# Installs them when run as root; otherwise stops and names what is missing.
set -eu
missing=""
need() {  # need SONAME PACKAGE
    if ! ldconfig -p 2>/dev/null | grep -q "$1"; then
        missing="$missing $2"
    fi
}
need libusb-1.0.so.0 libusb-1.0-0   # open3d
need libgomp.so.1 libgomp1          # open3d, onnxruntime
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
    echo "missing system packages:$missing" >&2
    echo "install them with: sudo apt-get install$missing" >&2
    exit 1
fi
