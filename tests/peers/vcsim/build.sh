#!/usr/bin/env bash
# Builds the vCenter simulator from Debian's govmomi sources, offline, once per source
# version: the binary is cached under $VCSIM_CACHE (default ~/.cache/backup-orchestrator)
# by the hash of main.go and the govmomi package version. Prints the binary's path.
# Needs: golang-go golang-github-vmware-govmomi-dev golang-github-google-uuid-dev.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
gocode=/usr/share/gocode
govmomi="$(dpkg-query -W -f '${Version}' golang-github-vmware-govmomi-dev 2>/dev/null || echo unknown)"
key="$( (cat "$here/main.go"; echo "$govmomi"; go version) | sha256sum | cut -c1-16)"
cache="${VCSIM_CACHE:-$HOME/.cache/backup-orchestrator}"
binary="$cache/vcsim-$key"
if [ ! -x "$binary" ]; then
    mkdir -p "$cache"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/src/vcsim"
    cp "$here/main.go" "$work/src/vcsim/"
    (cd "$work/src/vcsim" && GO111MODULE=off GOPROXY=off \
        GOPATH="$work:$gocode" GOCACHE="$cache/go-build" go build -o "$binary.$$.tmp" .) >&2
    mv "$binary.$$.tmp" "$binary"
fi
echo "$binary"
