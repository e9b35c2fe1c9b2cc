"""What an answer showed, packed small: exposures are written for every answer an experiment
serves (a million a day is a load this machine must carry), and ten item ids as text are most
of a row. A canonical UUID (how items are named) packs to its 16 bytes; any other id to its
UTF-8 bytes after a two-byte length. The order is kept: it is the answer's positions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

UUID_TAG, TEXT_TAG = 0, 1


def pack(ids: Sequence[str]) -> bytes:
    out = bytearray()
    for item in ids:
        u = _uuid(item)
        if u is not None:
            out.append(UUID_TAG)
            out += u.bytes
        else:
            raw = item.encode()
            out.append(TEXT_TAG)
            out += len(raw).to_bytes(2, "big")
            out += raw
    return bytes(out)


def unpack(data: bytes) -> list[str]:
    out: list[str] = []
    k = 0
    while k < len(data):
        tag, k = data[k], k + 1
        if tag == UUID_TAG:
            out.append(str(uuid.UUID(bytes=data[k:k + 16])))
            k += 16
        elif tag == TEXT_TAG:
            size = int.from_bytes(data[k:k + 2], "big")
            out.append(data[k + 2:k + 2 + size].decode())
            k += 2 + size
        else:
            raise ValueError(f"unknown tag {tag} at byte {k - 1}")
    return out


def _uuid(item: str) -> uuid.UUID | None:
    if len(item) != 36:
        return None
    try:
        u = uuid.UUID(item)
    except ValueError:
        return None
    return u if str(u) == item else None  # only the canonical spelling round-trips
