"""Podman on this machine kind, for the container tests (``../shared/reference/test-services.md``).

Runs go through ``runc`` with cgroupfs and explicit ulimits (the default runtime and limits fail
here); images cannot be pulled, so the base is a Debian bookworm ``debootstrap --variant=minbase``
root file system with python3, imported once as :data:`BASE_IMAGE` and cached in :data:`CACHE` so a
later run (and CI) skips the 45 s bootstrap.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

CACHE = Path("/var/tmp/mspclaw-containers")
BASE_TAR = CACHE / "base-bookworm.tar"
BASE_IMAGE = "localhost/mspclaw-base:bookworm"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=check, timeout=timeout)


def unavailable() -> str | None:
    """Why podman cannot build and run containers here, or ``None`` when it can."""
    for program in ("podman", "runc", "debootstrap"):
        if shutil.which(program) is None:
            return f"{program} is not installed (`make test` installs podman, buildah, runc and debootstrap with apt)"
    try:
        podman("info", timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = exc.stderr.strip().splitlines()[-1:] if isinstance(exc.stderr, str) and exc.stderr else [str(exc)]
        return f"podman cannot run here: {detail[0] if detail else exc}"
    return None


@contextmanager
def _locked() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def base_image() -> str:
    """The bookworm base image with python3: imported from the cached tar, bootstrapped when missing."""
    with _locked():
        if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
            return BASE_IMAGE
        if not BASE_TAR.exists():
            rootfs = CACHE / "rootfs.tmp"
            shutil.rmtree(rootfs, ignore_errors=True)
            subprocess.run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm",
                            str(rootfs)], check=True, capture_output=True, timeout=900)
            for cache in (rootfs / "var/cache/apt/archives", rootfs / "var/lib/apt/lists"):
                for entry in cache.glob("*"):
                    if entry.is_file():
                        entry.unlink()
            partial = BASE_TAR.with_suffix(".tar.tmp")
            with partial.open("wb") as out:
                subprocess.run(["tar", "-C", str(rootfs), "-c", "."], stdout=out, check=True, timeout=300)
            partial.rename(BASE_TAR)
            shutil.rmtree(rootfs, ignore_errors=True)
        podman("import", str(BASE_TAR), BASE_IMAGE, timeout=300)
        return BASE_IMAGE


def build(image: str, repo: Path, python: str, extra: Sequence[str] = ()) -> str:
    """Build ``deploy/Containerfile.<image>`` on the base image with ``deploy/build.sh``; return its tag."""
    tag = f"localhost/mspclaw-{image}:test"
    env = {**os.environ, "CONTAINER_ENGINE": " ".join(PODMAN), "PYTHON": python, "TAG": tag,
           "BASE_IMAGE": base_image()}
    with _locked():
        done = subprocess.run([str(repo / "deploy" / "build.sh"), image, "--network", "none", *LIMITS, *extra],
                              capture_output=True, text=True, timeout=900, env=env)
    if done.returncode != 0:
        raise AssertionError(f"building {image} failed:\n{done.stderr[-4000:]}")
    podman("image", "prune", "--force", check=False)  # the build stages left untagged
    return tag
