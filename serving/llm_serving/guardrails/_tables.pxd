# cython: language_level=3
# Shared by the compiled twins of the guardrail checks (`_tables.pyx` implements it):
# the 64-byte open-addressing word slots, their hash and probes, the prepared rule
# tokens of a prompt (`Tokens`), and a word table (`Lexicon`). Each check's compiled
# module cimports what it reads from here.

from cpython.unicode cimport (
    PyUnicode_1BYTE_DATA, PyUnicode_1BYTE_KIND, PyUnicode_GET_LENGTH, PyUnicode_KIND,
)
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memcmp


cdef extern from *:
    void __builtin_prefetch(const void* address)


# ----------------------------------------------------------------------------- vocabulary

cdef enum:
    KEY_BYTES = 27

ctypedef struct _Key:
    # The head of a slot in the word tables: the word's hash (0: an empty slot) and bytes.
    uint64_t hash
    uint8_t length
    char bytes[KEY_BYTES]


ctypedef struct _Term:
    # A word of the toxicity vocabulary and its index.
    _Key key
    int32_t index


ctypedef struct _Views:
    # The words of a text as the scorers read them: per word its one-byte characters
    # (NULL when it has wider ones), its length and its `_slot_hash` (0: no slot fits it).
    Py_ssize_t count
    const unsigned char** data
    Py_ssize_t* lengths
    uint64_t* hashes


cdef class Tokens:
    cdef str marked
    cdef const unsigned char* base
    cdef int32_t* starts
    cdef int32_t* lengths
    cdef int32_t* sentences  # the number of marks before each word
    cdef uint64_t* hashes
    cdef Py_ssize_t count
    cdef Py_ssize_t marks
    cdef readonly Py_ssize_t longest


cdef class Lexicon:
    cdef _Term* slots
    cdef uint64_t mask
    cdef dict others
    cdef Py_ssize_t find(self, const unsigned char* data, Py_ssize_t length, uint64_t hashed)
    cdef Py_ssize_t other(self, object word)


cdef inline uint64_t _fnv(const unsigned char* data, Py_ssize_t size):
    cdef uint64_t value = 14695981039346656037ULL
    cdef Py_ssize_t i
    for i in range(size):
        value = (value ^ data[i]) * 1099511628211ULL
    return value | 1


cdef inline uint64_t _pair_key(int64_t first, int64_t second):
    return ((<uint64_t>(first + 1)) << 32) | <uint64_t>(second + 1)


cdef inline uint64_t _pair_slot(uint64_t key, uint64_t mask):
    return ((key * 11400714819323198485ULL) >> 20) & mask


cdef inline uint64_t _free_slot(void* slots, size_t size, uint64_t mask, uint64_t start):
    """The first empty slot from `start` on, in a table of `size`-byte slots that each
    begin with a 64-bit hash or key (0 when empty)."""
    cdef uint64_t position = start & mask
    while (<uint64_t*>(<char*>slots + position * size))[0] != 0:
        position = (position + 1) & mask
    return position


cdef inline bint _fits(str word):
    """Whether `word` fits a slot: one byte per character, at most `KEY_BYTES` of them."""
    return PyUnicode_KIND(word) == PyUnicode_1BYTE_KIND and PyUnicode_GET_LENGTH(word) <= KEY_BYTES



cdef inline uint64_t _slot_hash(str word):
    """The hash a table files `word` under, or 0 for a word that does not fit a slot."""
    if not _fits(word):
        return 0
    return _fnv(PyUnicode_1BYTE_DATA(word), PyUnicode_GET_LENGTH(word))


cdef inline void _prefetch(void* slots, size_t size, uint64_t mask, uint64_t hashed):
    """Start loading the first slot a lookup of `hashed` probes.

    The scorers look up every word of a prompt; after the core has been idle the
    tables are not in the cache, and each lookup waits for memory. Starting all the
    loads first, in one pass, lets those waits overlap instead of adding up.
    """
    __builtin_prefetch(<char*>slots + (hashed & mask) * size)


cdef inline void* _lookup_bytes(
    void* slots, size_t size, uint64_t mask, const unsigned char* data, Py_ssize_t length,
    uint64_t hashed,
):
    """The slot holding the word of these one-byte characters, whose `_fnv` is
    `hashed`, or NULL."""
    cdef uint64_t position = hashed & mask
    cdef _Key* slot
    while True:
        slot = <_Key*>(<char*>slots + position * size)
        if slot.hash == 0:
            return NULL
        if slot.hash == hashed and slot.length == length and memcmp(slot.bytes, data, length) == 0:
            return slot
        position = (position + 1) & mask


cdef inline object _word_list(object words):
    """`words` itself if it is a list or a `Tokens`, else the list of its items."""
    return words if type(words) is list or type(words) is Tokens else list(words)


cdef void* _claim(void* slots, size_t size, uint64_t mask, str word)
cdef void* _claim_bytes(
    void* slots, size_t size, uint64_t mask, const unsigned char* data, Py_ssize_t length
)
cdef int _views(object words, _Views* views) except -1
cdef void _free_views(_Views* views)
cdef void* _slots(Py_ssize_t capacity, size_t size)
cdef Py_ssize_t _capacity(Py_ssize_t items)
