"""Fuzzing what a papa kernel reads: request lines and their words.

For any bytes, however a network cuts them, the kernel's line reader gives
exactly the lines sent (or one ``LineTooLong`` per oversized line), holds no
more than one line's worth, and the tokenizer never fails; with the
``escapes`` extension every word survives the trip.
"""

from hypothesis import example, given
from hypothesis import strategies as st

from papa.protocol import escape, tokenize
from tests.fuzz.checks import check_line_reader, check_tokenize

LIMIT = 64


line_bytes = st.lists(
    st.one_of(
        st.binary(max_size=LIMIT * 2),
        st.text(max_size=30).map(str.encode),
        st.sampled_from([b"make process x", b"\r", b" ", b"\xff\xfe", b"set a 1"]),
    ),
    max_size=10,
).map(lambda lines: b"\n".join(lines))


@given(line_bytes, st.lists(st.integers(0, 2000), max_size=8))
@example(b"x" * (LIMIT + 1) + b"\nok\n", [LIMIT - 3, LIMIT + 7])
def test_the_line_reader_gives_the_lines_sent_however_they_are_cut(data, cuts):
    check_line_reader(data, cuts, LIMIT)


@given(st.text(max_size=80), st.booleans())
def test_any_line_splits_into_words_without_failing(line, escapes):
    check_tokenize(line, escapes)


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=6))
@example(["Error: x", "a b", "\\", "\n", "E"])
@example([" ", "0"])  # found: an escaped space ending a word glued it to the next
@example(["a ", " b", "\t \t"])
def test_with_escapes_every_word_comes_back_as_sent(words):
    line = " ".join(escape(word) for word in words)
    assert "\n" not in line and "\r" not in line
    assert not line.startswith("E")
    assert tokenize(line, escapes=True) == [visible(word) for word in words]


def visible(word):
    """*word* as the kernel sees it: stripped, as papa strips words, of the
    whitespace escape() leaves as it is (tabs...), never of what it escapes."""
    unescaped = "".join({c for c in word if c.isspace() and c not in " \n\r"})
    return word.strip(unescaped) if unescaped else word
