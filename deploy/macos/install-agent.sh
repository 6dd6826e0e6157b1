#!/bin/sh
# Install the MSPclaw agent on a Mac as a launch daemon. Pushed by the MSP's RMM or MDM as root, with the
# single-file agent `mspclaw-agent` shipped next to this script (nothing is downloaded):
#
#   sudo ./install-agent.sh --server https://msp.example:8700 --enroll-code enr_...
#
# Enrolls once (the code comes from `mspclaw enroll CLIENT` on the server), then installs and starts
# com.mspclaw.agent. Run again without --enroll-code to upgrade the binary in place.
# Exit codes: 0 installed; 1 enrollment or installation failed; 2 usage error.
set -eu

SERVER=""
CODE=""
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=/usr/local/mspclaw
STATE="/Library/Application Support/mspclaw-agent"
PLIST=/Library/LaunchDaemons/com.mspclaw.agent.plist

while [ "$#" -gt 0 ]; do
    case "$1" in
    --server) SERVER=${2:-}; shift 2 ;;
    --enroll-code) CODE=${2:-}; shift 2 ;;
    *) echo "usage: $0 --server URL [--enroll-code CODE]" >&2; exit 2 ;;
    esac
done
case "$SERVER" in
*[!A-Za-z0-9.:/_-]*) echo "--server: only a plain http(s)://host[:port] URL is accepted" >&2; exit 2 ;;
https://?*|http://?*) ;;
*) echo "--server must be the server's http(s) URL" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ -x "$HERE/mspclaw-agent" ] || { echo "mspclaw-agent is not next to this script" >&2; exit 1; }

launchctl bootout system/com.mspclaw.agent 2>/dev/null || true
install -d -m 0755 -o root -g wheel "$PREFIX"
install -m 0755 -o root -g wheel "$HERE/mspclaw-agent" "$PREFIX/mspclaw-agent"
install -d -m 0700 -o root -g wheel "$STATE"

if [ -n "$CODE" ]; then
    # enroll: the agent stores its credential in agent.json, then is stopped until launchd starts it
    "$PREFIX/mspclaw-agent" agent --server "$SERVER" --state-dir "$STATE" --enroll "$CODE" &
    pid=$!
    waited=0
    while [ ! -s "$STATE/agent.json" ] && kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 60 ]; do
        sleep 1; waited=$((waited + 1))
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [ -s "$STATE/agent.json" ] || { echo "enrollment failed: see the messages above" >&2; exit 1; }
fi
[ -s "$STATE/agent.json" ] || { echo "not enrolled: pass --enroll-code" >&2; exit 2; }

sed "s#https://msp.example:8700#$SERVER#" "$HERE/com.mspclaw.agent.plist" > "$PLIST.tmp"
chown root:wheel "$PLIST.tmp"
chmod 0644 "$PLIST.tmp"
mv "$PLIST.tmp" "$PLIST"
plutil -lint "$PLIST" >/dev/null
launchctl bootstrap system "$PLIST"
echo "MSPclaw agent installed and started (logs: /Library/Logs/mspclaw-agent.log)"
