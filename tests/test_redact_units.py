"""No text drkit emits carries a secret it read, and nothing it publishes carries anything
shaped like one (drkit.redact)."""

from __future__ import annotations

import base64
import uuid

import pytest

from drkit.redact import MASK, find_secrets, known_secrets, redact, register_secret


def _secret(length: int = 24) -> str:
    return ("s3cr3t-" + uuid.uuid4().hex * 2)[:length]  # this test's own: the registry is global


def test_a_registered_secret_is_masked_wherever_it_appears():
    secret = _secret()
    register_secret(secret)
    assert secret in known_secrets()
    assert redact(f"login {secret} failed; again {secret}.") == \
        f"login {MASK} failed; again {MASK}."


def test_a_longer_secret_is_masked_whole_even_when_a_shorter_one_is_inside_it():
    short = _secret(10)
    long = short + "-and-more"
    register_secret(short)
    register_secret(long)
    assert redact(f"<{long}> <{short}>") == f"<{MASK}> <{MASK}>"


@pytest.mark.parametrize("value", ["", "1", "abcde"])
def test_values_too_short_to_be_secrets_are_not_registered(value):
    register_secret(value)
    assert value not in known_secrets()
    assert redact("1 abcde 2") == "1 abcde 2"  # innocent text stays as it was


KEY = base64.b64encode(b"k" * 64).decode()  # the shape of a storage account key (88 chars)


@pytest.mark.parametrize(("text", "kind"), [
    (f"key={KEY}", "an Azure storage account key (1x)"),
    ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abcdefghijklmnopqrstuvwxyz0123==",
     "an Azure connection string key (1x)"),
    ("https://a.blob.core.windows.net/c?sv=2024&sig=abcdefghijklmnop1234%3D",
     "a SAS token (1x)"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "an AWS secret access key (1x)"),
    ('password = "hunter22"', "a password (1x)"),
    ('{"pwd": "hunter22"}', "a password (1x)"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", "a private key (1x)"),
    ("key AGE-SECRET-KEY-1MUVEUE9YKJC008LUML8WRSNDJCR4KNGN03EJ2M0XE8GL894LWSZS7K7DTD",
     "an age identity (1x)"),
])
def test_secret_shaped_text_is_found_by_its_kind_never_quoted(text, kind):
    found = find_secrets(text, [])
    assert found == [kind]
    assert not any(text in entry for entry in found)


@pytest.mark.parametrize("text", [
    "password = ref.resolve()",  # code that reads a secret, not one
    'password: "secret:azure_mysql_password"',  # a reference
    'password: "env:DRKIT_PW"',
    f"password: '{MASK}'",  # already masked
    KEY + "A",  # 89 characters: no key
    "an ordinary sentence about passwords and keys",
])
def test_references_code_and_masks_are_not_taken_for_secrets(text):
    assert find_secrets(text, []) == []


def test_a_value_of_this_runs_secrets_is_found_whatever_its_shape():
    value = _secret()
    assert find_secrets(f"note: {value}", [value, ""]) == ["a value of this run's secrets"]
    assert find_secrets("note: nothing", [value, ""]) == []


def test_each_kind_is_counted():
    assert find_secrets(f"{KEY} and {KEY}", []) == ["an Azure storage account key (2x)"]
