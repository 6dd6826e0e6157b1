#!/bin/sh
# Launcher of MSPclaw: the entry point of the container images, and of the systemd units when the
# server or agent is installed in /opt/mspclaw (as /opt/mspclaw/bin/mspclaw-launch).
#
# Secrets come from files (compose/podman/Kubernetes secrets), never from the image: for every
# variable NAME_FILE set for a name MSPclaw or libpq reads (MSPCLAW_*, PGPASSWORD), NAME is set to
# the file's content. A NAME_FILE naming a missing or unreadable file stops the container with a
# message that says which secret is missing; the secret's value is never printed. The settings that
# are file names themselves (MSPCLAW_TLS_CERT_FILE, MSPCLAW_TLS_KEY_FILE, MSPCLAW_SECRET_KEY_FILE:
# MSPclaw reads, and re-reads, those files) are checked the same way and passed on unchanged.
#
# MSPCLAW_LAUNCH=server (the default, server image): runs `mspclaw ARGS...` (default `server`).
# MSPCLAW_LAUNCH=agent (site-agent image, agent unit): `agent` runs the agent with --server from
# MSPCLAW_AGENT_SERVER, --state-dir from MSPCLAW_AGENT_STATE_DIR and, on the first start only (no
# agent.json yet), --enroll from MSPCLAW_AGENT_ENROLL_CODE(_FILE); `site ...` configures integrations.
set -eu
umask 077

EX_CONFIG=78

for assignment in $(env | sed -n 's/^\(MSPCLAW_[A-Z0-9_]*_FILE\)=.*/\1/p; s/^\(PGPASSWORD_FILE\)=.*/\1/p'); do
    name=${assignment%_FILE}
    eval "path=\${$assignment}"
    if [ ! -f "$path" ] || [ ! -r "$path" ]; then
        echo "mspclaw: $assignment names $path, which is missing or unreadable: mount the secret '$name' there" >&2
        exit $EX_CONFIG
    fi
    case $assignment in
    MSPCLAW_TLS_CERT_FILE | MSPCLAW_TLS_KEY_FILE | MSPCLAW_SECRET_KEY_FILE) continue ;;
    esac
    value=$(cat "$path")
    if [ -z "$value" ]; then
        echo "mspclaw: the secret in $path ($assignment) is empty" >&2
        exit $EX_CONFIG
    fi
    export "$name=$value"
    unset "$assignment"
done

if [ "${MSPCLAW_LAUNCH:-server}" = "agent" ]; then
    state_dir=${MSPCLAW_AGENT_STATE_DIR:-/var/lib/mspclaw-agent}
    case "${1:-agent}" in
    agent)
        [ "$#" -gt 0 ] && shift
        if [ -z "${MSPCLAW_AGENT_SERVER:-}" ]; then
            echo "mspclaw: set MSPCLAW_AGENT_SERVER to the server's URL, e.g. https://msp.example:8700" >&2
            exit $EX_CONFIG
        fi
        if [ ! -s "$state_dir/agent.json" ]; then
            if [ -z "${MSPCLAW_AGENT_ENROLL_CODE:-}" ]; then
                echo "mspclaw: not enrolled yet: provide the code from \`mspclaw enroll CLIENT --role site\`" \
                     "as the secret MSPCLAW_AGENT_ENROLL_CODE_FILE (or MSPCLAW_AGENT_ENROLL_CODE)" >&2
                exit $EX_CONFIG
            fi
            code=$MSPCLAW_AGENT_ENROLL_CODE
            unset MSPCLAW_AGENT_ENROLL_CODE
            exec mspclaw agent --server "$MSPCLAW_AGENT_SERVER" --state-dir "$state_dir" --enroll "$code" "$@"
        fi
        exec mspclaw agent --server "$MSPCLAW_AGENT_SERVER" --state-dir "$state_dir" "$@"
        ;;
    site)
        shift
        exec mspclaw site "$@"
        ;;
    esac
fi

exec mspclaw "$@"
