"""scrypt password hashes for upstream accounts.

An account's password is stored in the configuration as one string,

    scrypt$N$r$p$SALT$HASH

with ``N``, ``r``, ``p`` the scrypt cost parameters (RFC 7914 §2) in decimal,
and ``SALT`` (16 random bytes) and ``HASH`` (the 32-byte derived key) in
standard base64 without ``=`` padding (``$`` is not in that alphabet, so the
fields split unambiguously). The parameters travel with the hash, so raising
the cost later leaves existing hashes verifiable.

Defaults ``N = 2**14, r = 8, p = 1`` are RFC 7914 §2's interactive-login
figures and Python's ``hashlib.scrypt`` documentation example: about 16 MiB
and a few tens of milliseconds per check. That cost is paid per *bind*, not
per message; the caller runs :func:`verify_password` in a worker thread so it
never stalls the event loop.

SMPP 3.4 §4.1 limits a bind password to 8 octets; that limit belongs to the
bind PDU, not to this module, which hashes any string.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_N",
    "DEFAULT_P",
    "DEFAULT_R",
    "ScryptHash",
    "hash_password",
    "parse",
    "verify_password",
]

SCHEME: Final = "scrypt"
DEFAULT_N: Final = 2**14
DEFAULT_R: Final = 8
DEFAULT_P: Final = 1
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32

# Upper bounds on what a configured hash may ask for. A hash is data from a
# file: without a bound a typo such as N=2**40 would make every bind try to
# allocate terabytes. 2**20 x r=32 is 4 GiB of scrypt memory, far above any
# sensible login cost, and still a finite, checked amount.
MAX_N: Final = 2**20
MAX_R: Final = 32
MAX_P: Final = 16
# Salt and hash lengths accepted when parsing (bytes): 8..64 covers every
# common encoder; we write 16 and 32.
_MIN_FIELD_BYTES: Final = 8
_MAX_FIELD_BYTES: Final = 64


@dataclass(frozen=True, slots=True)
class ScryptHash:
    """A parsed ``scrypt$N$r$p$salt$hash`` string.

    Attributes:
        n: CPU/memory cost (a power of two, 2..2**20).
        r: block size (1..32).
        p: parallelisation (1..16).
        salt: the random salt.
        digest: the derived key to compare against.
    """

    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def encode(self) -> str:
        """The configuration string of this hash."""
        return "$".join(
            (SCHEME, str(self.n), str(self.r), str(self.p), _b64(self.salt), _b64(self.digest))
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    # validate=True rejects characters outside the alphabet instead of skipping them.
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _maxmem(n: int, r: int, p: int) -> int:
    # hashlib.scrypt refuses to use more than maxmem (default 32 MiB). scrypt
    # needs 128*N*r bytes for V plus 128*r*p for B; add slack for OpenSSL.
    return 128 * r * (n + p) + (1 << 20)


def _derive(password: str, n: int, r: int, p: int, salt: bytes, dklen: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=_maxmem(n, r, p),
        dklen=dklen,
    )


def _check_params(n: int, r: int, p: int) -> None:
    if not (2 <= n <= MAX_N and n & (n - 1) == 0):
        raise ValueError(f"scrypt N must be a power of two in 2..{MAX_N}, got {n}")
    if not 1 <= r <= MAX_R:
        raise ValueError(f"scrypt r must be in 1..{MAX_R}, got {r}")
    if not 1 <= p <= MAX_P:
        raise ValueError(f"scrypt p must be in 1..{MAX_P}, got {p}")


def hash_password(
    password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> str:
    """Hash ``password`` with scrypt and a fresh random 16-byte salt.

    Args:
        password: the clear-text password (any length; encoded as UTF-8).
        n: scrypt CPU/memory cost, a power of two (default 2**14).
        r: scrypt block size (default 8).
        p: scrypt parallelisation (default 1).

    Returns:
        ``scrypt$N$r$p$salt_b64$hash_b64``, for an account's ``password_hash``.

    Raises:
        ValueError: a cost parameter is out of range.
    """
    _check_params(n, r, p)
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _derive(password, n, r, p, salt, HASH_BYTES)
    return ScryptHash(n, r, p, salt, digest).encode()


def parse(encoded: str) -> ScryptHash:
    """Parse and check a ``scrypt$N$r$p$salt$hash`` string.

    Used to validate ``accounts[i].password_hash`` once at start-up.

    Args:
        encoded: the stored hash.

    Returns:
        Its parameters, salt and digest.

    Raises:
        ConfigError: the string is not a well-formed scrypt hash; the message
            says which part is wrong (it never contains the hash itself).
    """
    # Imported here: relayd.config imports this module at load time.
    from relayd.config import ConfigError

    try:
        return _parse(encoded)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _parse(encoded: str) -> ScryptHash:
    if not isinstance(encoded, str):
        raise ValueError(f"expected a string, got {type(encoded).__name__}")
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise ValueError(
            "not a scrypt hash: expected 'scrypt$N$r$p$salt$hash' "
            "(generate one with `relayd hash-password`)"
        )
    numbers: list[int] = []
    for label, text in zip(("N", "r", "p"), parts[1:4], strict=True):
        # isdecimal() alone would accept non-ASCII digits; int() would accept '+8', ' 8', '1_0'.
        if not (text.isascii() and text.isdigit()) or len(text) > 8:
            raise ValueError(f"scrypt {label} is not a decimal number")
        numbers.append(int(text))
    n, r, p = numbers
    _check_params(n, r, p)
    fields: list[bytes] = []
    for label, text in (("salt", parts[4]), ("hash", parts[5])):
        try:
            raw = _unb64(text)
        except (binascii.Error, ValueError):
            raise ValueError(f"scrypt {label} is not valid base64") from None
        if not _MIN_FIELD_BYTES <= len(raw) <= _MAX_FIELD_BYTES:
            raise ValueError(
                f"scrypt {label} must be {_MIN_FIELD_BYTES}..{_MAX_FIELD_BYTES} bytes, "
                f"got {len(raw)}"
            )
        fields.append(raw)
    return ScryptHash(n, r, p, fields[0], fields[1])


def verify_password(password: str, encoded: str) -> bool:
    """Check ``password`` against a stored hash, in constant time.

    CPU-bound for tens of milliseconds at the default cost: call it from a
    worker thread (``asyncio.to_thread``), never on the event loop.

    Args:
        password: the clear-text password presented (e.g. in a bind PDU).
        encoded: the stored ``scrypt$...`` string.

    Returns:
        True if it matches; False if it does not, or if ``encoded`` is
        malformed (a broken hash must not let anyone in, nor crash a bind).
    """
    try:
        h = _parse(encoded)
        candidate = _derive(password, h.n, h.r, h.p, h.salt, len(h.digest))
    except (ValueError, MemoryError):  # UnicodeEncodeError is a ValueError
        return False
    return hmac.compare_digest(candidate, h.digest)
