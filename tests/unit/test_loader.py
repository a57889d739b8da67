"""Files -> archival memory: text in the encodings people's files are in is read and cleaned; binaries are
skipped; a path that can't be read is one clear error."""

from __future__ import annotations

import random

import pytest

from memagent.errors import UserError
from memagent.loader import decode_text, find_files, load_path, read_text_file

RNG = random.Random(7)
TEXT = "Brad's boat «Zanzibar» sails from Lisboa; café, crème brûlée, Straße, naïve — 10 €."


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (TEXT.encode("utf-8"), TEXT),
        (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), TEXT),
        (TEXT.encode("utf-16"), TEXT),  # with its byte-order mark, little or big endian
        (b"\xfe\xff" + TEXT.encode("utf-16-be"), TEXT),
        (TEXT.encode("utf-32"), TEXT),
        (TEXT.encode("cp1252"), TEXT),  # what "Latin-1" text files from Windows are
        ("Ação, coração, pão".encode("latin-1"), "Ação, coração, pão"),
        ("Überraschung".encode("iso-8859-1"), "Überraschung"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16", "utf-16-be-bom", "utf-32", "cp1252", "latin-1-pt", "latin-1-de"],
)
def test_common_encodings_are_decoded(encoded, expected):
    assert decode_text(encoded) == expected


def test_utf8_with_a_few_bad_bytes_stays_utf8():
    good = ("Ação " * 50).encode("utf-8")
    assert decode_text(good + b"\xe9 stray") == "Ação " * 50 + "\ufffd stray"
    assert decode_text(good[:-2] + "ã".encode()[:1]).endswith("\ufffd")  # cut in the middle of a character


def test_text_is_cleaned_of_control_and_escape_codes():
    assert decode_text(b"red \x1b[31malert\x1b[0m\x07 done\r\n") == "red alert done\r\n"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        b"\x7fELF\x02\x01\x01" + bytes(9),
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
        bytes(RNG.randrange(1, 256) for _ in range(4096)),  # random bytes, no NUL
        b"plain text then \x00 a NUL",
    ],
    ids=["png", "jpeg", "elf", "zip", "random-no-nul", "nul"],
)
def test_binaries_are_refused(data):
    assert decode_text(data) is None


def test_read_text_file_and_load_path_take_latin1_files(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "latin1.txt").write_bytes("Le bateau de Brad s'appelle Zanzibar. Très joli.".encode("latin-1"))
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    assert read_text_file(folder / "latin1.txt") == "Le bateau de Brad s'appelle Zanzibar. Très joli."
    inserted: list[list[str]] = []
    report = load_path(inserted.append, folder)
    assert inserted == [["Le bateau de Brad s'appelle Zanzibar. Très joli."]]
    assert [p.name for p, _ in report.loaded] == ["latin1.txt"]
    assert [(p.name, why) for p, why in report.skipped] == [("photo.jpg", "binary file")]


def test_file_names_with_escape_codes_are_reported_clean(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "evil\x1b[2J.bin").write_bytes(b"\x00\x01")
    summary = load_path(lambda chunks: None, folder).summary("sam")
    assert "\x1b" not in summary and "evil.bin: binary file." in summary


@pytest.mark.parametrize("name", ["x" * 5000, "a\x00b"], ids=["too-long", "nul"])
def test_a_path_that_cant_be_read_is_one_user_error(tmp_path, name):
    with pytest.raises(UserError) as raised:
        find_files(tmp_path / name)
    assert "\n" not in str(raised.value)
