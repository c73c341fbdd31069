#!/bin/sh
# System packages the project needs (Debian names). `--test` adds the tools the
# interop tests use: mbpoll (an independent Modbus master) and Node.js/npm (for
# node-opcua, an independent OPC UA client); `--nodesets` adds npm, which fetches
# the PackML nodeset the FC server loads (`make run` too). Installs them when run as root;
# otherwise stops and names what is missing.
set -eu
missing=""
need_lib() {  # need_lib SONAME PACKAGE
    ldconfig -p 2>/dev/null | grep -q "$1" || missing="$missing $2"
}
need_cmd() {  # need_cmd COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}
need_lib libusb-1.0.so.0 libusb-1.0-0   # open3d
need_lib libgomp.so.1 libgomp1          # open3d, onnxruntime
if [ "${1:-}" = "--test" ]; then
    need_cmd mbpoll mbpoll
    need_cmd npm npm
fi
if [ "${1:-}" = "--nodesets" ]; then
    need_cmd npm npm
fi
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
