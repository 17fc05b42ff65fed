"""COPY text straight from pgoutput Insert messages, column by column for many rows at once (numpy).

An Insert message in text format is 'I', the relation id (4 bytes), 'N', the column count (2),
then per column a kind byte: 't' + the value's length (4, big-endian) + its text, or 'n' for
NULL ('u', an unchanged TOAST value, cannot occur in a new row). For a run of inserts into one
table the walk over the columns is done for every message at once: column k's kind bytes and
lengths are gathered with one array operation each, so the Python work is per column, not per
value. The value bytes then stay where they are and the headers become separators:

- a 't' column's kind byte becomes the field separator \\x00, or \\x01 (row separator) in a
  row's first column; its four length bytes are dropped;
- an 'n' column's kind byte becomes \\x02 (field separator + NULL), or \\x03 (row separator + NULL);
- each message's 8-byte head is dropped.

PostgreSQL text never contains NUL, so \\x00 cannot be a value byte; the other markers can, so
their counts are checked (as in copytext) and a run whose values contain one is refused (None:
the caller decodes message by message). Then backslash, tab, newline and carriage return are
escaped (bytes.replace passes, only when a value has one), the NULL markers become COPY's \\N
and one bytes.translate pass turns the separators into tab and newline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HEAD = 8  # 'I', relation id, 'N', column count
_T, _N = 0x74, 0x6E
_HEAD_SPAN = np.arange(HEAD)
_SEPARATORS = bytes.maketrans(b"\x00\x01", b"\t\n")
_MARKERS = b"\x01\x02\x03"
_LENGTH_SPAN = np.arange(1, 5)


def copy_text(messages: Sequence[bytes], ncols: int) -> bytes | None:
    """The rows of Insert `messages` (each with `ncols` columns) as COPY text, or None when this
    fast path cannot take them (a marker byte in a value, or a message it does not understand)."""
    n = len(messages)
    if n == 0:
        return b""
    layout = _layout(messages, ncols)
    if layout is None:
        return None
    buf, starts, ends = layout
    drop = [(starts[:, None] + _HEAD_SPAN).ravel()]
    pos = starts + HEAD
    nulls = 0
    first_nulls = 0
    for k in range(ncols):
        if (pos >= ends).any():
            return None
        kind = buf[pos]
        text = kind == _T
        if text.all():  # the common case: no NULL in this column
            tpos, tends, null = pos, ends, None
        else:
            null = ~text
            if (kind[null] != _N).any():
                return None
            npos = pos[null]
            buf[npos] = 0x03 if k == 0 else 0x02
            if k == 0:
                first_nulls = len(npos)
            else:
                nulls += len(npos)
            tpos, tends = pos[text], ends[text]
        if len(tpos):
            if (tpos + 5 > tends).any():
                return None
            span = tpos[:, None] + _LENGTH_SPAN
            length = np.ascontiguousarray(buf[span]).view(">u4").ravel().astype(np.int64)
            buf[tpos] = 0x01 if k == 0 else 0x00
            drop.append(span.ravel())
            if null is None:
                pos = pos + 5 + length
                continue
            step = np.ones(n, dtype=np.int64)
            step[text] = 5 + length
            pos = pos + step
        else:
            pos = pos + 1
    if (pos != ends).any():
        return None
    keep = np.ones(len(buf), dtype=bool)
    keep[np.concatenate(drop)] = False
    return _finish(buf[keep].tobytes(), n, nulls, first_nulls)


def _layout(messages: Sequence[bytes], ncols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The messages in one writable buffer with each one's start and end, or None when one is not an
    Insert of `ncols` columns."""
    if ncols < 1:
        return None
    lens = np.fromiter(map(len, messages), dtype=np.int64, count=len(messages))
    ends = np.cumsum(lens)
    starts = ends - lens
    buf = np.frombuffer(bytearray(b"".join(messages)), dtype=np.uint8)
    if (lens < HEAD + ncols).any():
        return None
    counts = (buf[starts + 6].astype(np.int64) << 8) | buf[starts + 7]
    if (counts != ncols).any():
        return None
    return buf, starts, ends


def _finish(out: bytes, n: int, nulls: int, first_nulls: int) -> bytes | None:
    """The kept bytes (markers between values) as COPY text: escapes, NULLs, separators."""
    if len(out) - len(out.translate(None, _MARKERS)) != n + nulls:  # one more marker byte: a value holds it
        return None
    if b"\\" in out or b"\t" in out or b"\n" in out or b"\r" in out:  # values needing escapes (rare)
        out = out.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    if nulls or first_nulls:
        out = out.replace(b"\x02", b"\t\\N").replace(b"\x03", b"\n\\N")
    return out.translate(_SEPARATORS)[1:] + b"\n"
