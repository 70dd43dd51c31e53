# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of two steps of the PII scan: `Needles` finds which of a few gate words
occur in one pass, `digit_bounds` where a text's digits start and end. A unit test
holds them equal to `pii`'s plain-Python versions.
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
    KEY_BYTES,
)


cdef class Needles:
    """Which of up to 64 fixed ASCII strings (of at least 3 characters) occur in a text.

    One pass over the text: per byte three table reads (a bit set of the needles each
    byte can be the first, second and third character of) rule out almost every
    position, and only the needles left are compared. `str.find` per needle costs a
    pass each; the PII scan asks this of about thirty gate words per text.
    """

    cdef uint64_t table[3][256]
    cdef bytes joined
    cdef Py_ssize_t offsets[65]
    cdef Py_ssize_t count

    def __cinit__(self, tuple needles):
        cdef Py_ssize_t index, position
        cdef bytes raw
        if len(needles) > 64:
            raise ValueError("at most 64 needles")
        memset(self.table, 0, sizeof(self.table))
        self.count = len(needles)
        parts = []
        self.offsets[0] = 0
        for index in range(self.count):
            needle = needles[index]
            if not isinstance(needle, str) or not needle.isascii() or len(needle) < 3:
                raise ValueError(f"needle {needle!r} is not ASCII text of at least 3 characters")
            raw = needle.encode("ascii")
            for position in range(3):
                self.table[position][raw[position]] |= (<uint64_t>1) << index
            parts.append(raw)
            self.offsets[index + 1] = self.offsets[index] + len(raw)
        self.joined = b"".join(parts)

    def found(self, str text):
        """The bit set of the needles `text` holds (bit i: needle i), or -1 when `text`
        is not stored one byte per character (the caller then asks `str`)."""
        if PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND:
            return -1
        cdef const unsigned char* data = PyUnicode_1BYTE_DATA(text)
        cdef const unsigned char* needle_bytes = self.joined
        cdef Py_ssize_t size = PyUnicode_GET_LENGTH(text), i, index, length
        cdef uint64_t result = 0, candidates, left
        for i in range(size - 2):
            candidates = (
                self.table[0][data[i]] & self.table[1][data[i + 1]] & self.table[2][data[i + 2]]
            ) & ~result
            while candidates:
                left = candidates & (candidates - 1)
                index = __builtin_ctzll(candidates)
                length = self.offsets[index + 1] - self.offsets[index]
                if i + length <= size and memcmp(
                    data + i, needle_bytes + self.offsets[index], length
                ) == 0:
                    result |= (<uint64_t>1) << index
                candidates = left
        return result



def digit_bounds(str text):
    """The index of the first and of the last ASCII digit of `text`, or None without one.

    For text stored one byte per character (`pii._digit_bounds` asks `str` for the
    rest): one pass from each end, where a find per digit costs twenty.
    """
    if PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND:
        raise ValueError("digit_bounds takes text stored one byte per character")
    cdef const unsigned char* data = PyUnicode_1BYTE_DATA(text)
    cdef Py_ssize_t size = PyUnicode_GET_LENGTH(text), first = 0, last
    while first < size and not (48 <= data[first] <= 57):
        first += 1
    if first == size:
        return None
    last = size - 1
    while not (48 <= data[last] <= 57):
        last -= 1
    return first, last
