"""What the NoCloud seed says: meta-data, user-data and network-config. The root password is kept only
as a SHA-512 crypt hash.

The credentials' cloud-config is built when the instance is created (or rebuilt, or its password reset)
and kept on the instance; the seed's three files are built from it, the customer's own user data and
the instance's address whenever a job writes the seed (provisioning.domain_spec.seed_spec_for).
"""

import base64
import binascii
import ctypes
import ctypes.util
import hashlib
import json
import secrets
import string
from collections.abc import Sequence
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
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


# Where a password reset leaves the hash it applied, so it is applied once and not at every boot.
_APPLIED_HASH_FILE = "/var/lib/gpuadmin/root-hash"


def user_data(
    *, hostname: str, root_pass: str | None, authorized_keys: Sequence[str], reset: bool = False
) -> str:
    """cloud-config with the root credentials. JSON strings are valid YAML, which keeps quoting safe.

    `reset`: a password reset on a disk cloud-init has already set up. Its instance-id stays (a new one
    would rerun every per-instance module: the customer's scripts again, new SSH host keys), so
    cloud-init's chpasswd would not run again; a boot command applies the new hash once instead.
    """
    lines = ["#cloud-config", f"hostname: {json.dumps(hostname)}", "disable_root: false"]
    if root_pass and reset:
        hashed = sha512_crypt(root_pass)  # only [./0-9A-Za-z$]: safe inside single quotes
        script = (
            f"h='{hashed}'; m={_APPLIED_HASH_FILE}; "
            '[ "$(cat $m 2>/dev/null)" = "$h" ] || { printf \'root:%s\\n\' "$h" | chpasswd -e '
            '&& mkdir -p "${m%/*}" && printf %s "$h" > $m; }'
        )
        lines += ["bootcmd:", f"  - [sh, -c, {json.dumps(script)}]"]
        lines += ["ssh_pwauth: true"]
    elif root_pass:
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


# Linode takes up to 16 KiB of user data (before base64).
USER_DATA_MAX_BYTES = 16 * 1024


def decode_user_data(encoded: str) -> bytes:
    """The customer's metadata.user_data, base64 as Linode takes it. ValueError says what is wrong."""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("user_data must be base64-encoded.") from exc
    if len(data) > USER_DATA_MAX_BYTES:
        raise ValueError(f"user_data is {len(data)} bytes; at most {USER_DATA_MAX_BYTES} are accepted.")
    return data


def meta_data(*, instance_id: str, hostname: str) -> str:
    return f"instance-id: {json.dumps(instance_id)}\nlocal-hostname: {json.dumps(hostname)}\n"


def network_config(
    *,
    mac: str,
    address: str | None = None,
    prefix_length: int | None = None,
    gateway: str | None = None,
    nameservers: Sequence[str] = (),
) -> str:
    """Netplan-style network-config version 2 for the guest's one NIC, matched by its MAC. With an
    address, a static configuration with its default route; without one (no pool holds the instance's
    address), DHCP on that NIC."""
    lines = [
        "version: 2",
        "ethernets:",
        "  eth0:",
        "    match:",
        f"      macaddress: {json.dumps(mac)}",
        "    set-name: eth0",
    ]
    if address is None:
        lines.append("    dhcp4: true")
    else:
        lines.append(f"    addresses: [{json.dumps(f'{address}/{prefix_length}')}]")
        if gateway:
            lines += ["    routes:", "      - to: default", f"        via: {json.dumps(gateway)}"]
        if nameservers:
            listed = ", ".join(json.dumps(n) for n in nameservers)
            lines += ["    nameservers:", f"      addresses: [{listed}]"]
    return "\n".join(lines) + "\n"


# The customer's part first, the credentials after it, merged into it (lists appended, mappings merged
# key by key): the customer's own users and settings stay, and root gets the password and keys asked
# for, as on Linode, where they are set whatever the user data says.
_CREDENTIALS_MERGE = "merge_how: [{name: list, settings: [append]}, {name: dict, settings: [recurse_array]}]"


def seed_user_data(*, credentials: str, customer: bytes | None) -> str:
    """The seed's user-data: the credentials' cloud-config alone, or with the customer's user data (any
    format cloud-init reads: cloud-config, a script, ...) as a MIME multi-part archive."""
    if not customer:
        return credentials
    archive = MIMEMultipart(boundary="gpuadmin-user-data")
    try:
        text = customer.decode()
    except UnicodeDecodeError:
        archive.attach(MIMEApplication(customer, "octet-stream", Name="customer-user-data"))
    else:
        # cloud-init tells the part's type from its first line (#cloud-config, #!, #include, ...).
        archive.attach(MIMEText(text, "x-not-multipart", _charset(text)))
    own = credentials.rstrip("\n") + "\n" + _CREDENTIALS_MERGE + "\n"
    archive.attach(MIMEText(own, "cloud-config", _charset(own)))
    return archive.as_string()


def _charset(text: str) -> str:
    """us-ascii parts travel as they are (7bit), readable in the seed; others as base64 UTF-8."""
    return "us-ascii" if text.isascii() else "utf-8"
