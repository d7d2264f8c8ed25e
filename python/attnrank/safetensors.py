"""Safetensors files with numpy only, byte-compatible with attnrank's C++ writer.

The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
header length, a JSON header mapping tensor names to {dtype, shape, data_offsets}
(plus an optional "__metadata__" map of strings), then the raw little-endian data.

The writer lays a file out exactly as src/core/safetensors.cpp does, so the same
tensors and metadata give the same bytes: "__metadata__" first (omitted when
empty, keys sorted), tensors in name order with the keys dtype, shape,
data_offsets, compact JSON with non-ASCII text as UTF-8, the header padded with
spaces to a multiple of 8, the data contiguous in name order.

The reader checks what the C++ reader checks (header length, JSON, duplicate
names, dtypes, shapes against offsets, offsets inside the data, no overlaps and no
gaps) and raises attnrank.FormatError naming the file.
"""
import json
import os

import numpy as np

from .errors import FormatError

__all__ = ["load_file", "load_metadata", "read", "deserialize", "save_file", "serialize"]

_METADATA = "__metadata__"
_MAX_HEADER_BYTES = 100 * 1000 * 1000

# dtype name -> numpy dtype. F8_* and BF16 have no numpy type: they are read as
# raw unsigned integers of their width (the C++ reader keeps them as raw bytes too).
_DTYPES = {
    "BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
    "F8_E4M3": np.dtype("u1"), "F8_E5M2": np.dtype("u1"),
    "I16": np.dtype("<i2"), "U16": np.dtype("<u2"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"), "I32": np.dtype("<i4"), "U32": np.dtype("<u4"),
    "F32": np.dtype("<f4"), "I64": np.dtype("<i8"), "U64": np.dtype("<u8"),
    "F64": np.dtype("<f8"),
}
# numpy dtype -> the name written.
_NAMES = {
    np.dtype("?"): "BOOL", np.dtype("u1"): "U8", np.dtype("i1"): "I8",
    np.dtype("i2"): "I16", np.dtype("u2"): "U16", np.dtype("f2"): "F16",
    np.dtype("i4"): "I32", np.dtype("u4"): "U32", np.dtype("f4"): "F32",
    np.dtype("i8"): "I64", np.dtype("u8"): "U64", np.dtype("f8"): "F64",
}


def serialize(tensors, metadata=None):
    """The bytes of a safetensors file holding `tensors` (name -> array-like) and
    `metadata` (str -> str)."""
    header = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError("safetensors: metadata keys and values must be str, got %r: %r"
                                % (key, value))
        header[_METADATA] = {key: metadata[key] for key in sorted(metadata)}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        if not isinstance(name, str):
            raise TypeError("safetensors: tensor names must be str, got %r" % (name,))
        if name == _METADATA:
            raise ValueError("safetensors: the tensor name __metadata__ is reserved")
        array = np.asarray(tensors[name])
        dtype = array.dtype.newbyteorder("=") if array.dtype.byteorder == ">" else array.dtype
        if dtype not in _NAMES:
            raise TypeError("safetensors: tensor '%s' has dtype %s, which safetensors cannot "
                            "store" % (name, array.dtype))
        data = np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _NAMES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    # nlohmann::json's dump(): compact, UTF-8 kept as is, control characters escaped.
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return b"".join([len(text).to_bytes(8, "little"), text] + chunks)


def save_file(tensors, path, metadata=None):
    """Writes `tensors` and `metadata` to `path` atomically (PATH.tmp, then rename),
    like the C++ writer."""
    path = os.fspath(path)
    data = serialize(tensors, metadata)
    temporary = path + ".tmp"
    try:
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _fail(source, what):
    raise FormatError("%s: invalid safetensors file: %s" % (source, what))


class _Pairs(list):
    """A JSON object as parsed, duplicates kept (json.loads keeps only the last of
    duplicate keys, which would drop a tensor silently)."""


def _as_dicts(value, source, depth=0):
    if isinstance(value, _Pairs):
        seen = set()
        for key, _ in value:
            if key in seen:
                if depth == 0:
                    _fail(source, "duplicate tensor name '%s'" % key)
                _fail(source, "duplicate key '%s' in the header" % key)
            seen.add(key)
        return {key: _as_dicts(item, source, depth + 1) for key, item in value}
    if isinstance(value, list):
        return [_as_dicts(item, source, depth + 1) for item in value]
    return value


def _count(value, source, what):
    if type(value) is not int:  # bool is an int subclass, and no count
        _fail(source, what + " is not an integer")
    if value < 0:
        _fail(source, "%s is negative (%d)" % (what, value))
    if value >= 1 << 63:
        _fail(source, "%s is too large (%d)" % (what, value))
    return value


def deserialize(data, source="<bytes>"):
    """(tensors, metadata) from the bytes of a safetensors file. The arrays are
    views on a private copy of the data buffer (writable)."""
    if len(data) < 8:
        _fail(source, "file is %d bytes, shorter than the 8-byte header length" % len(data))
    header_bytes = int.from_bytes(data[:8], "little")
    if header_bytes > _MAX_HEADER_BYTES:
        _fail(source, "header length %d is absurd (> 100 MB)" % header_bytes)
    if header_bytes > len(data) - 8:
        _fail(source, "header length %d runs past the end of the file (%d bytes)"
              % (header_bytes, len(data)))
    raw_header = bytes(data[8:8 + header_bytes])
    try:
        parsed = json.loads(raw_header.decode("utf-8"), object_pairs_hook=_Pairs)
    except (UnicodeDecodeError, ValueError) as error:
        _fail(source, "header is not valid JSON (%s)" % error)
    header = _as_dicts(parsed, source)
    if not isinstance(header, dict):
        _fail(source, "header is not a JSON object")
    if not raw_header.startswith(b"{"):
        _fail(source, "header does not start with '{'")
    buffer = bytearray(data[8 + header_bytes:])
    metadata = {}
    if _METADATA in header:
        entries = header.pop(_METADATA)
        if not isinstance(entries, dict):
            _fail(source, "__metadata__ is not a JSON object")
        for key, value in entries.items():
            if not isinstance(value, str):
                _fail(source, "__metadata__ value '%s' is not a string" % key)
            metadata[key] = value
    extents = []
    tensors = {}
    for name, entry in header.items():
        where = "tensor '%s'" % name
        if not isinstance(entry, dict):
            _fail(source, where + " is not a JSON object")
        for key in ("dtype", "shape", "data_offsets"):
            if key not in entry:
                _fail(source, '%s has no "%s"' % (where, key))
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str):
            _fail(source, where + ": dtype is not a string")
        if not isinstance(shape, list):
            _fail(source, where + ": shape is not an array")
        if not isinstance(offsets, list) or len(offsets) != 2:
            _fail(source, where + ": data_offsets is not an array of two integers")
        if dtype not in _DTYPES:
            _fail(source, "%s: unknown dtype '%s'" % (where, dtype))
        dims = [_count(dim, source, "%s: shape[%d]" % (where, axis))
                for axis, dim in enumerate(shape)]
        expected = _DTYPES[dtype].itemsize
        for dim in dims:
            expected *= dim
        begin = _count(offsets[0], source, where + ": data_offsets[0]")
        end = _count(offsets[1], source, where + ": data_offsets[1]")
        if begin > end:
            _fail(source, "%s: data_offsets begin %d > end %d" % (where, begin, end))
        if end > len(buffer):
            _fail(source, "%s: data_offsets end %d is beyond the data buffer (%d bytes; file "
                  "truncated?)" % (where, end, len(buffer)))
        if end - begin != expected:
            _fail(source, "%s: data_offsets span %d bytes but dtype and shape need %d"
                  % (where, end - begin, expected))
        extents.append((begin, end, name))
        tensors[name] = np.frombuffer(buffer, dtype=_DTYPES[dtype], count=expected //
                                      _DTYPES[dtype].itemsize, offset=begin).reshape(dims)
    # The spec requires the tensors to tile the data buffer exactly.
    covered, previous = 0, None
    for begin, end, name in sorted(extents):
        if begin < covered:
            _fail(source, "tensors '%s' and '%s' overlap" % (previous, name))
        if begin > covered:
            _fail(source, "data bytes [%d, %d) belong to no tensor (gap before '%s')"
                  % (covered, begin, name))
        covered, previous = end, name
    if covered != len(buffer):
        _fail(source, "data bytes [%d, %d) at the end belong to no tensor"
              % (covered, len(buffer)))
    return {name: tensors[name] for name in sorted(tensors)}, metadata


def read(path):
    """(tensors, metadata) of the file at `path`."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError("%s: no such safetensors file" % path) from None
    return deserialize(data, path)


def load_file(path):
    """The tensors of the file at `path` (name -> numpy array), like
    safetensors.numpy.load_file."""
    return read(path)[0]


def load_metadata(path):
    """The "__metadata__" map of the file at `path` (empty when absent)."""
    return read(path)[1]
