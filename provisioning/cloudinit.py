"""NoCloud user-data for a new instance. The root password is kept only as a SHA-512 crypt hash."""

import ctypes
import ctypes.util
import hashlib
import json
import secrets
import string
from collections.abc import Sequence
from functools import lru_cache

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# The order in which SHA-crypt spreads the 64 digest bytes over its 4-character groups.
_SHA512_GROUPS = [
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
    (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
    (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41),
]  # fmt: skip


def _b64_from_24bit(b2: int, b1: int, b0: int, chars: int) -> str:
    word = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(chars):
        out.append(_ITOA64[word & 0x3F])
        word >>= 6
    return "".join(out)


def _repeat_to(digest: bytes, length: int) -> bytes:
    return (digest * (length // len(digest) + 1))[:length]


# libxcrypt's struct crypt_data is 32768 bytes; crypt_rn refuses a smaller buffer.
_CRYPT_DATA_SIZE = 32768
# crypt_rn takes a passphrase of at most 512 bytes, terminator included.
_CRYPT_MAX_PASSPHRASE = 511


@lru_cache(maxsize=1)
def _crypt_rn():
    """libxcrypt's crypt_rn (the C library behind /etc/shadow), or None where it is not installed."""
    for name in ("libcrypt.so.1", ctypes.util.find_library("crypt")):
        if not name:
            continue
        try:
            function = ctypes.CDLL(name).crypt_rn
        except (OSError, AttributeError):
            continue
        function.restype = ctypes.c_char_p
        function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
        return function
    return None


def sha512_crypt(password: str, salt: str | None = None, rounds: int = 5000) -> str:
    """The `$6$` hash that /etc/shadow, chpasswd and cloud-init understand (Drepper's SHA-crypt).

    5,000 rounds of SHA-512 cost 8 ms of CPU in Python and 3 ms in C, on every create: libxcrypt's
    crypt_rn computes it when the system has it (every Debian and Ubuntu does), the same hash bit for
    bit; our own implementation does otherwise (the standard library's `crypt` module is deprecated
    and gone in Python 3.13), and for what crypt_rn cannot take (a NUL, more than 511 bytes).
    """
    if salt is None:
        salt = "".join(secrets.choice(_ITOA64) for _ in range(16))
    salt = salt[:16]
    crypt_rn, phrase = _crypt_rn(), password.encode()
    if crypt_rn is not None and b"\0" not in phrase and len(phrase) <= _CRYPT_MAX_PASSPHRASE:
        setting = f"$6${salt}" if rounds == 5000 else f"$6$rounds={rounds}${salt}"
        data = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
        hashed = crypt_rn(phrase, setting.encode(), data, _CRYPT_DATA_SIZE)
        if hashed is not None and hashed.startswith(b"$6$"):
            return hashed.decode()
    return sha512_crypt_python(password, salt, rounds)


def sha512_crypt_python(password: str, salt: str, rounds: int = 5000) -> str:
    """SHA-crypt in Python, for systems without libxcrypt: the reference sha512_crypt is tested against."""
    pw, sl = password.encode(), salt[:16].encode()
    alternate = hashlib.sha512(pw + sl + pw).digest()
    a = hashlib.sha512(pw + sl + _repeat_to(alternate, len(pw)))
    length = len(pw)
    while length:
        a.update(alternate if length & 1 else pw)
        length >>= 1
    digest = a.digest()
    p_seq = _repeat_to(hashlib.sha512(pw * len(pw)).digest(), len(pw))
    s_seq = _repeat_to(hashlib.sha512(sl * (16 + digest[0])).digest(), len(sl))
    for round_number in range(rounds):
        c = hashlib.sha512(p_seq if round_number & 1 else digest)
        if round_number % 3:
            c.update(s_seq)
        if round_number % 7:
            c.update(p_seq)
        c.update(digest if round_number & 1 else p_seq)
        digest = c.digest()
    encoded = "".join(_b64_from_24bit(digest[i], digest[j], digest[k], 4) for i, j, k in _SHA512_GROUPS)
    encoded += _b64_from_24bit(0, 0, digest[63], 2)
    prefix = "$6$" if rounds == 5000 else f"$6$rounds={rounds}$"
    return f"{prefix}{sl.decode()}${encoded}"


ROOT_PASS_LENGTH = 24
# No quotes, spaces or shell metacharacters: easy to paste into a console.
_ROOT_PASS_PUNCTUATION = "-_.:+=@%"


def random_root_pass() -> str:
    """A random root password with every character class, so the create service's rules always accept it."""
    classes = [string.ascii_lowercase, string.ascii_uppercase, string.digits, _ROOT_PASS_PUNCTUATION]
    alphabet = "".join(classes)
    chars = [secrets.choice(c) for c in classes]
    chars += [secrets.choice(alphabet) for _ in range(ROOT_PASS_LENGTH - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def user_data(*, hostname: str, root_pass: str | None, authorized_keys: Sequence[str]) -> str:
    """cloud-config with the root credentials. JSON strings are valid YAML, which keeps quoting safe."""
    lines = ["#cloud-config", f"hostname: {json.dumps(hostname)}", "disable_root: false"]
    if root_pass:
        lines += [
            "ssh_pwauth: true",
            "chpasswd:",
            "  expire: false",
            "  users:",
            f"    - {{name: root, type: hash, password: {json.dumps(sha512_crypt(root_pass))}}}",
        ]
    if authorized_keys:
        lines += ["users:", "  - name: root", "    ssh_authorized_keys:"]
        lines += [f"      - {json.dumps(key)}" for key in authorized_keys]
    return "\n".join(lines) + "\n"


def authorized_keys_of(user_data_text: str) -> list[str]:
    """The root SSH keys in user-data written by `user_data` (a password reset keeps them)."""
    keys, inside = [], False
    for line in user_data_text.splitlines():
        if line.strip() == "ssh_authorized_keys:":
            inside = True
        elif inside and line.startswith("      - "):
            keys.append(json.loads(line[len("      - ") :]))
        else:
            inside = False
    return keys
