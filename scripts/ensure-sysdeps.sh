#!/bin/sh
# System packages the project needs (Debian names). `--test` adds the tools the
# interop tests use: mbpoll (an independent Modbus master), Node.js/npm (for
# node-opcua, an independent OPC UA client, SCION and mermaid-cli) and chromium, the
# browser mermaid-cli renders the chart exports with (without its Recommends: on a minimal
# bookworm ~175 packages, 221 MB downloaded, ~100 s on 2 cores); `--nodesets` adds npm, which
# fetches the PackML nodeset the FC server loads (`make run` too). Installs them when run as
# root; otherwise stops and names what is missing.
set -eu
missing=""
lean=""  # installed without their Recommends
need_lib() {  # need_lib SONAME PACKAGE
    ldconfig -p 2>/dev/null | grep -q "$1" || missing="$missing $2"
}
need_cmd() {  # need_cmd COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}
need_lean_cmd() {  # need_lean_cmd COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || lean="$lean $2"
}
need_lib libusb-1.0.so.0 libusb-1.0-0   # open3d, pyrealsense2
need_lib libgomp.so.1 libgomp1          # open3d, onnxruntime
if [ "${1:-}" = "--test" ]; then
    need_cmd mbpoll mbpoll
    need_cmd npm npm
    need_lean_cmd chromium chromium
fi
if [ "${1:-}" = "--nodesets" ]; then
    need_cmd npm npm
fi
[ -z "$missing$lean" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing system packages:$missing$lean"
    apt-get update -qq
    [ -z "$missing" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    [ -z "$lean" ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $lean >/dev/null
else
    echo "missing system packages:$missing$lean" >&2
    echo "install them with: sudo apt-get install$missing$lean" >&2
    exit 1
fi
