"""zeo.address.parse_address: the one reading of an address."""

import pytest

from zeo.address import parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8100", ("127.0.0.1", 8100)),
        (":8100", ("127.0.0.1", 8100)),
        ("8100", ("127.0.0.1", 8100)),
        (8100, ("127.0.0.1", 8100)),
        ("[::1]:8100", ("::1", 8100)),
        ("::1:8100", ("::1", 8100)),
        (("example.org", "8100"), ("example.org", 8100)),
        (["example.org", 8100], ("example.org", 8100)),
        ("/run/zeo.sock", "/run/zeo.sock"),
        ("./odd:name", "./odd:name"),
        ("zeo.sock", "zeo.sock"),
        (" localhost:1 ", ("localhost", 1)),
    ],
)
def test_spellings(text, expected):
    assert parse_address(text) == expected


def test_binding_defaults_to_every_interface():
    assert parse_address(":8100", bind=True) == ("", 8100)
    assert parse_address("8100", bind=True) == ("", 8100)
    assert parse_address("10.0.0.1:8100", bind=True) == ("10.0.0.1", 8100)


@pytest.mark.parametrize(
    "bad", ["", "host:port", "host:99999", ("h",), ("h", "x"), True, 3.5, -1]
)
def test_bad_addresses_are_named(bad):
    with pytest.raises(ValueError) as caught:
        parse_address(bad)
    assert str(caught.value)
