"""Small helpers shared by every stage: atomic writes, devices, seeding, hashing."""

from synthmed.utils.io import (
    atomic_path,
    clean_stale_tmp,
    sha256_array,
    sha256_bytes,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
    write_npz_atomic,
    write_text_atomic,
)
from synthmed.utils.runtime import resolve_device, seed_everything, package_versions, git_commit

__all__ = [
    "atomic_path",
    "clean_stale_tmp",
    "sha256_array",
    "sha256_bytes",
    "sha256_file",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_npz_atomic",
    "write_text_atomic",
    "resolve_device",
    "seed_everything",
    "package_versions",
    "git_commit",
]
