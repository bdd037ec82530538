"""The root password's SHA-512 crypt hash: the one /etc/shadow and cloud-init check, from C or Python."""

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioning import cloudinit
from provisioning.cloudinit import _ITOA64, sha512_crypt, sha512_crypt_python, user_data

# From Drepper's "Unix crypt using SHA-256 and SHA-512", the specification's own test vectors.
SPECIFICATION_VECTORS = [
    (
        "Hello world!",
        "saltstring",
        5000,
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
    ),
    (
        "Hello world!",
        "saltstringsaltstring",  # a salt is 16 characters at most: the rest is dropped
        10000,
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/"
        "YTBmSK6H9qs/y3RnOaw5v.",
    ),
]

needs_libxcrypt = pytest.mark.skipif(cloudinit._crypt_rn() is None, reason="libxcrypt (libcrypt.so.1) absent")


@pytest.mark.parametrize(("password", "salt", "rounds", "expected"), SPECIFICATION_VECTORS)
@pytest.mark.parametrize("implementation", [sha512_crypt, sha512_crypt_python], ids=["default", "python"])
def test_the_specifications_vectors(implementation, password, salt, rounds, expected):
    assert implementation(password, salt, rounds) == expected


@needs_libxcrypt
@settings(max_examples=60, deadline=None)
@given(
    password=st.text(min_size=1, max_size=128).filter(lambda p: "\0" not in p),
    salt=st.text(alphabet=_ITOA64, min_size=1, max_size=16),
)
def test_libxcrypt_and_the_python_implementation_agree(password, salt):
    assert sha512_crypt(password, salt) == sha512_crypt_python(password, salt)


@needs_libxcrypt
def test_the_c_library_computes_it_when_present(monkeypatch):
    def refuse(*args):
        raise AssertionError("the Python implementation ran although libxcrypt is there")

    monkeypatch.setattr(cloudinit, "sha512_crypt_python", refuse)
    assert sha512_crypt("Bench-Passw0rd!", "abcdefgh").startswith("$6$abcdefgh$")


def test_without_the_c_library_the_python_implementation_gives_the_same_hash(monkeypatch):
    expected = sha512_crypt("Correct-Horse-9", "0123456789abcdef")
    monkeypatch.setattr(cloudinit, "_crypt_rn", lambda: None)
    assert sha512_crypt("Correct-Horse-9", "0123456789abcdef") == expected


def test_what_crypt_rn_cannot_take_is_hashed_in_python():
    # A NUL ends a C string, and crypt_rn takes at most 511 bytes: both would hash something else.
    for password in ("before\0after", "é" * 300):
        assert sha512_crypt(password, "saltsalt") == sha512_crypt_python(password, "saltsalt")
    assert sha512_crypt("before\0after", "saltsalt") != sha512_crypt("before", "saltsalt")


def test_user_data_carries_a_hash_of_the_password_with_a_fresh_salt():
    documents = [
        user_data(hostname="gpu-1", root_pass="Bench-Passw0rd!", authorized_keys=()) for _ in range(2)
    ]
    hashes = []
    for document in documents:
        (line,) = [line for line in document.splitlines() if "type: hash" in line]
        hashed = json.loads(re.search(r'password: (".*")}', line).group(1))
        salt = hashed.split("$")[2]
        assert len(salt) == 16 and hashed == sha512_crypt_python("Bench-Passw0rd!", salt)
        assert "Bench-Passw0rd!" not in document
        hashes.append(hashed)
    assert hashes[0] != hashes[1]
