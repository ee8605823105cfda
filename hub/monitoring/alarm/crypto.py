"""DC-09 encryption: AES-128/192/256 in CBC mode with a zero IV, hex on the wire.

The clear text is ``pad | data ] [x] _timestamp``: the pad (random printable characters without
``|``, ``[`` and ``]``) makes it a multiple of 16 bytes, the ``|`` ends it.
"""

from __future__ import annotations

import secrets
import string

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["DecryptError", "decrypt", "encrypt", "parse_key"]

_IV = bytes(16)
_PAD = (string.ascii_letters + string.digits).encode()


class DecryptError(ValueError):
    """The text is not hex of whole blocks, or does not decrypt to a DC-09 clear text."""


def parse_key(key_hex: str) -> bytes:
    """A key as configured: 32, 48 or 64 hex digits (AES-128/192/256)."""
    key_hex = key_hex.strip()
    if len(key_hex) not in (32, 48, 64):
        raise ValueError("the key must be 32, 48 or 64 hex digits (AES-128, -192 or -256)")
    return bytes.fromhex(key_hex)


def encrypt(key: bytes, clear: str) -> str:
    """Hex of the encrypted ``pad|clear`` (the pad is random, so two encryptions differ)."""
    body = clear.encode("ascii")
    pad_length = 16 - (len(body) + 1) % 16
    if pad_length == 16:
        pad_length = 0
    pad = bytes(_PAD[secrets.randbelow(len(_PAD))] for _ in range(pad_length))
    encryptor = Cipher(algorithms.AES(key), modes.CBC(_IV)).encryptor()
    return (encryptor.update(pad + b"|" + body) + encryptor.finalize()).hex().upper()


def decrypt(key: bytes, text: str) -> str:
    """The clear text after the pad and its ``|``."""
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise DecryptError("not hex") from None
    if not data or len(data) % 16:
        raise DecryptError("not whole AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(_IV)).decryptor()
    clear = decryptor.update(data) + decryptor.finalize()
    pad, bar, rest = clear.partition(b"|")
    if not bar or b"[" in pad or b"]" in pad:
        raise DecryptError("no pad separator: wrong key?")
    try:
        return rest.decode("ascii")
    except UnicodeDecodeError:
        raise DecryptError("clear text is not ASCII: wrong key?") from None
