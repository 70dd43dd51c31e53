# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of `normalization.prepare_in_python` for ASCII text: `prepare_ascii`
normalises, marks sentences and splits the rule tokens in one pass, handing them over
as a `Tokens` (offsets, no string per token). A unit test holds it equal to the
plain-Python version.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from cpython.unicode cimport (
    PyUnicode_1BYTE_DATA, PyUnicode_1BYTE_KIND, PyUnicode_GET_LENGTH, PyUnicode_KIND,
    PyUnicode_New,
)
from libc.math cimport pow, sqrt
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcmp, memcpy, memset


cdef extern from "stdlib.h":
    void* aligned_alloc(size_t alignment, size_t size)

cdef extern from *:
    void __builtin_prefetch(const void* address)
    int __builtin_ctzll(unsigned long long value)

from llm_serving.guardrails._tables cimport (
    KEY_BYTES, Tokens, _fnv,
)


cdef enum:
    # The longest text `prepare_ascii` takes: its marked text (at most three times as
    # long) must fit the 32-bit offsets of `Tokens`.
    MAX_PREPARED = 600_000_000


cdef str _ascii_string(const unsigned char* data, Py_ssize_t length):
    """A new str of these ASCII bytes (the caller's bytes are all below 128)."""
    cdef str made = PyUnicode_New(length, 127)
    memcpy(PyUnicode_1BYTE_DATA(made), data, length)
    return made


cdef inline bint _lower_letter(unsigned char c):
    return 97 <= c <= 122  # a-z


cdef inline bint _spacer(unsigned char c):
    return c == 32 or c == 46 or c == 45 or c == 42  # space . - *


def prepare_ascii(str text, bytes fold_table, bytes separator_table):
    """`normalization.normalize`, `mark_sentences` and the rule tokens of ASCII text, in one go.

    `fold_table` maps each ASCII code to its lower-case, leetspeak-undone code and
    `separator_table` marks the codes that split rule tokens (white space for
    `str.split` and `rules.TOKEN_TABLE` punctuation); both come from the Python
    definitions and have an entry per ASCII code.

    Returns (normalized, marked, tokens, clean), where tokens is the rule tokens as a
    `Tokens` (`stream()` is what `prepare_in_python` returns), clean means that no control
    character splits words differently for `learned.tokens` (see
    `injection._STRAY_CONTROL`), or None for the rare texts this pass does not
    reproduce (letters spaced out one by one, "?" or "!" right before another sentence
    end) and for texts longer than `MAX_PREPARED`: the caller then takes the
    plain-Python path. `text` must be ASCII.
    """
    if not text.isascii():
        raise ValueError("prepare_ascii takes ASCII text only")
    if len(fold_table) < 128 or len(separator_table) < 128:
        raise ValueError("the fold and separator tables need an entry per ASCII code")
    if PyUnicode_GET_LENGTH(text) > MAX_PREPARED:
        return None  # the token offsets are 32-bit; the plain-Python path takes any size
    cdef const unsigned char* fold = fold_table
    cdef const unsigned char* separators = separator_table
    cdef const unsigned char* source = PyUnicode_1BYTE_DATA(text)
    cdef Py_ssize_t size = PyUnicode_GET_LENGTH(text), i, kept = 0, start, length
    cdef unsigned char c
    cdef bint clean = True  # no control characters that \w and str.split() treat apart
    # Room for the folded text, the normalised text, and the marked text (a character
    # becomes at most three: a line break turns into " NUL ").
    cdef unsigned char* room = <unsigned char*>malloc(5 * size + 3)
    if not room:
        raise MemoryError()
    cdef unsigned char* out = room
    cdef unsigned char* normal = room + size
    cdef unsigned char* marked_bytes = room + 2 * size
    cdef str normalized, marked
    try:
        # lower case and leetspeak
        for i in range(size):
            c = source[i]
            if (1 <= c <= 8) or (14 <= c <= 27) or c == 127:
                clean = False
            out[i] = fold[c]
        # a hyphen between two lower-case letters goes (neighbours as they were before)
        for i in range(size):
            c = out[i]
            if (c == 45 and 0 < i < size - 1 and _lower_letter(out[i - 1])
                    and _lower_letter(out[i + 1])):
                continue
            normal[kept] = c
            kept += 1
        # Letters spaced out one by one (collapsed by the Python path), and "?" or "!"
        # before another sentence end (the Python path's replacements in turn chain
        # there): the plain-Python path.
        for i in range(kept):
            c = normal[i]
            if (c == 63 or c == 33) and i + 1 < kept and (
                normal[i + 1] == 46 or normal[i + 1] == 63 or normal[i + 1] == 33
            ):
                return None
            if (i + 4 < kept and _spacer(c) and _lower_letter(normal[i + 1])
                    and _spacer(normal[i + 2]) and _lower_letter(normal[i + 3])
                    and _spacer(normal[i + 4])):
                return None
        normalized = _ascii_string(normal, kept)
        # sentence marks: NUL -> space; ". ", "? ", "! " and line breaks -> " NUL "
        length = 0
        i = 0
        while i < kept:
            c = normal[i]
            if c == 0:
                c = 32
            if c == 10 or ((c == 46 or c == 63 or c == 33) and i + 1 < kept
                           and (normal[i + 1] == 32 or normal[i + 1] == 0)):
                marked_bytes[length] = 32
                marked_bytes[length + 1] = 0
                marked_bytes[length + 2] = 32
                length += 3
                i += 1 if c == 10 else 2
                continue
            marked_bytes[length] = c
            length += 1
            i += 1
        marked = _ascii_string(marked_bytes, length)
    finally:
        free(room)
    cdef const unsigned char* base = PyUnicode_1BYTE_DATA(marked)
    # rule tokens: the separators split words; a NUL alone is a sentence mark
    cdef Py_ssize_t count = 0, end
    start = -1
    for i in range(length):
        if separators[base[i]]:
            start = -1
        elif start < 0:
            start = i
            count += 1
    cdef Tokens tokens = Tokens.__new__(Tokens)
    tokens.marked = marked
    tokens.base = base
    tokens.starts = <int32_t*>malloc(max(count, 1) * sizeof(int32_t))
    tokens.lengths = <int32_t*>malloc(max(count, 1) * sizeof(int32_t))
    tokens.sentences = <int32_t*>malloc(max(count, 1) * sizeof(int32_t))
    tokens.hashes = <uint64_t*>malloc(max(count, 1) * sizeof(uint64_t))
    if not tokens.starts or not tokens.lengths or not tokens.sentences or not tokens.hashes:
        raise MemoryError()
    start = -1
    for end in range(length + 1):
        if end < length and not separators[base[end]]:
            if start < 0:
                start = end
            continue
        if start < 0:
            continue
        i = end - start
        if i > tokens.longest:
            tokens.longest = i
        if i == 1 and tokens.base[start] == 0:
            tokens.marks += 1
        else:
            tokens.starts[tokens.count] = <int32_t>start
            tokens.lengths[tokens.count] = <int32_t>i
            tokens.sentences[tokens.count] = <int32_t>tokens.marks
            tokens.hashes[tokens.count] = _fnv(tokens.base + start, i) if i <= KEY_BYTES else 0
            tokens.count += 1
        start = -1
    return normalized, marked, tokens, clean
