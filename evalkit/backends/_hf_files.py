"""Files on disk: the evalkit cache folder, cached file hashes and GGUF headers.

Kept free of torch and transformers so that the alias table (which `evalkit models list`
reads) can use it without paying for heavy imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from evalkit.paths import cache_dir

_HASH_CACHE_NAME = "file-hashes.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """The sha256 of a file, remembered by (absolute path, size, mtime_ns).

    Fingerprints and the GGUF conversion cache both key on weight-file hashes; hashing a
    500 MB checkpoint on every load would cost about a second, so the hash is kept in a
    small JSON file beside the cache and recomputed only when the file changes.
    """
    resolved = path.resolve()
    stat = resolved.stat()
    key = f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = cache_dir() / _HASH_CACHE_NAME
    known = _read_hash_cache(cache_file)
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    with resolved.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    value = digest.hexdigest()
    known = _read_hash_cache(cache_file)  # re-read: another process may have added entries meanwhile
    known[key] = value
    _write_json_atomically(cache_file, known)
    return value


def combined_fingerprint(parts: Iterable[str]) -> str:
    """One sha256 over labelled parts (file hashes, load options), order-sensitive."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _read_hash_cache(cache_file: Path) -> dict[str, str]:
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a missing or damaged cache only costs a re-hash
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_json_atomically(target: Path, data: dict[str, str]) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=target.name, suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=0, sort_keys=True)
        os.replace(tmp_name, target)
    except OSError:
        pass  # a read-only cache folder must not stop a model from loading


# --- GGUF header -------------------------------------------------------------------------

# GGUF value type -> struct format (8 is a string, 9 an array).
_SCALAR_FORMATS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


def read_gguf_header(path: Path, wanted: Iterable[str]) -> dict[str, object]:
    """Read scalar metadata fields from a GGUF file, stopping once all `wanted` keys are seen.

    `gguf.GGUFReader` parses the whole tensor table and the vocabulary (10 s for Gemma's
    262k tokens); the file type sits near the start of the header, so a small reader that
    skips arrays and stops early answers in a millisecond.
    """
    remaining = set(wanted)
    found: dict[str, object] = {}
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        (version,) = struct.unpack("<I", handle.read(4))
        count_format = "<I" if version == 1 else "<Q"
        _read(handle, count_format)  # tensor count
        kv_count = int(_read(handle, count_format))
        for _ in range(kv_count):
            if not remaining:
                break
            key = _read_string(handle)
            value_type = int(_read(handle, "<I"))
            if value_type == _ARRAY:
                _skip_array(handle)
                continue
            value = _read_value(handle, value_type)
            if key in remaining:
                found[key] = value
                remaining.discard(key)
    return found


def gguf_quant_type(path: Path) -> str | None:
    """The file's quantization as llama.cpp names it ("Q4_1", "Q4_K_M"), or None if unrecorded."""
    try:
        header = read_gguf_header(path, ["general.file_type"])
    except (OSError, ValueError, struct.error):
        return None
    file_type = header.get("general.file_type")
    if not isinstance(file_type, int):
        return None
    try:
        from gguf import LlamaFileType

        name = LlamaFileType(file_type).name
    except (ImportError, ValueError):
        return f"type{file_type}"
    return name.removeprefix("MOSTLY_")


def _read(handle: BinaryIO, fmt: str) -> int | float | bool:
    size = struct.calcsize(fmt)
    data = handle.read(size)
    if len(data) != size:
        raise ValueError("truncated GGUF header")
    value: int | float | bool = struct.unpack(fmt, data)[0]
    return value


def _read_string(handle: BinaryIO) -> str:
    length = int(_read(handle, "<Q"))
    return handle.read(length).decode("utf-8", errors="replace")


def _read_value(handle: BinaryIO, value_type: int) -> object:
    if value_type == _STRING:
        return _read_string(handle)
    fmt = _SCALAR_FORMATS.get(value_type)
    if fmt is None:
        raise ValueError(f"unknown GGUF value type {value_type}")
    return _read(handle, fmt)


def _skip_array(handle: BinaryIO) -> None:
    element_type = int(_read(handle, "<I"))
    count = int(_read(handle, "<Q"))
    if element_type == _STRING:
        for _ in range(count):
            handle.seek(int(_read(handle, "<Q")), os.SEEK_CUR)
    elif element_type == _ARRAY:
        for _ in range(count):
            _skip_array(handle)
    else:
        fmt = _SCALAR_FORMATS.get(element_type)
        if fmt is None:
            raise ValueError(f"unknown GGUF array element type {element_type}")
        handle.seek(struct.calcsize(fmt) * count, os.SEEK_CUR)
