# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of `toxicity.ToxicityModel.segments_in_python` for ASCII text:
`toxicity_segments` splits a completion into segments of known words (a `Lexicon`) in
one pass with no regular expression. A unit test holds the two equal.
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
    KEY_BYTES, Lexicon, _fnv,
)



cdef inline bint _word_char(unsigned char c):
    """`\\w` for an ASCII character: a letter, a digit or the underscore."""
    return (97 <= c <= 122) or (65 <= c <= 90) or (48 <= c <= 57) or c == 95


cdef inline bint _white(unsigned char c):
    """`\\s` for an ASCII character (str patterns count \\x1c-\\x1f as white space)."""
    return c == 32 or (9 <= c <= 13) or (28 <= c <= 31)


def toxicity_segments(str text, Lexicon lexicon, Py_ssize_t segment_words):
    """`toxicity.ToxicityModel.segments` for ASCII text, in one pass with no regex.

    The tokens are those of ``\\w\\w+|[.!?](?=\\s)|\\n`` on the lower-cased text:
    runs of at least two word characters, and the sentence ends and line breaks
    that close a segment. A segment also closes after `segment_words` words. Returns
    the vocabulary indices of each non-empty segment's known words, in order.
    """
    if not text.isascii():
        raise ValueError("toxicity_segments takes ASCII text only")
    if segment_words < 1:
        raise ValueError("a segment must hold at least one word")
    cdef const unsigned char* data = PyUnicode_1BYTE_DATA(text)
    cdef Py_ssize_t size = PyUnicode_GET_LENGTH(text), i = 0, j, k, length, words = 0, index
    cdef unsigned char lowered[KEY_BYTES]
    cdef unsigned char c
    cdef list segments = [], current = []
    while i < size:
        c = data[i]
        if _word_char(c):
            j = i + 1
            while j < size and _word_char(data[j]):
                j += 1
            length = j - i
            if length >= 2:
                if length <= KEY_BYTES:
                    for k in range(length):
                        c = data[i + k]
                        lowered[k] = c + 32 if 65 <= c <= 90 else c
                    index = lexicon.find(lowered, length, _fnv(lowered, length))
                else:
                    index = lexicon.other(text[i:j].lower())
                if index >= 0:
                    current.append(index)
                words += 1
                if words == segment_words:
                    if current:
                        segments.append(current)
                    current = []
                    words = 0
            i = j
            continue
        if c == 10 or ((c == 46 or c == 33 or c == 63) and i + 1 < size and _white(data[i + 1])):
            if current:
                segments.append(current)
            current = []
            words = 0
        i += 1
    if current:
        segments.append(current)
    return segments
