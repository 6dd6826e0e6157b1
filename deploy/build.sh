#!/bin/sh
# Build an MSPclaw container image without network access during the build.
#
#   deploy/build.sh server|site-agent [extra build options...]
#
# Wheels of `mspclaw[server]` (or `[site]`) and their dependencies, pinned by constraints.txt, are
# built here with pip from the package index this machine is configured for, into a temporary build
# context with constraints.txt and deploy/; then the image is built from that context.
# Environment: CONTAINER_ENGINE (default `podman`; `docker` works too), PYTHON (default python3, with
# pip), TAG (default mspclaw-<image>:<version>), BASE_IMAGE (passed as the build argument when set).
set -eu

image=${1:-}
case "$image" in
server) extra=server ;;
site-agent) extra=site ;;
*) echo "usage: deploy/build.sh server|site-agent [build options...]" >&2; exit 2 ;;
esac
shift

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
engine=${CONTAINER_ENGINE:-podman}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/pyproject.toml" | head -n 1)
tag=${TAG:-mspclaw-$image:$version}

context=$(mktemp -d "${TMPDIR:-/tmp}/mspclaw-build.XXXXXX")
trap 'rm -rf "$context"' EXIT INT TERM

# A clean copy of the sources, so the build leaves nothing in the working tree.
mkdir -p "$context/src" "$context/deploy" "$context/wheelhouse"
(cd "$repo" && tar --exclude=__pycache__ --exclude='*.egg-info' -cf - pyproject.toml README.md src \
    $(ls LICENSE* 2>/dev/null || true)) | tar -C "$context/src" -xf -
cp "$repo/constraints.txt" "$context/constraints.txt"
cp "$repo/deploy/entrypoint.sh" "$repo/deploy/healthcheck.py" "$context/deploy/"

echo "building wheels of mspclaw[$extra] into the build context" >&2
$python -m pip wheel --quiet --disable-pip-version-check -c "$repo/constraints.txt" \
    -w "$context/wheelhouse" "$context/src[$extra]"
# Dependencies that only the image's Python needs (Debian's 3.11.2: redis wants async-timeout before 3.11.3),
# which a build host on a newer Python leaves out of the wheelhouse; pinned in constraints.txt.
$python -m pip wheel --quiet --disable-pip-version-check --no-deps -c "$repo/constraints.txt" \
    -w "$context/wheelhouse" async-timeout
rm -rf "$context/src"

# podman writes OCI images by default, which drop HEALTHCHECK; docker always writes the Docker format
format="--format docker"
case "${engine##*/}" in docker*) format="" ;; esac
set -- -f "$repo/deploy/Containerfile.$image" -t "$tag" "$@"
if [ -n "${BASE_IMAGE:-}" ]; then
    set -- --build-arg "BASE_IMAGE=$BASE_IMAGE" "$@"
fi
# shellcheck disable=SC2086  # CONTAINER_ENGINE may carry global options, e.g. "podman --runtime runc"
$engine build $format "$@" "$context" >&2
echo "$tag"
