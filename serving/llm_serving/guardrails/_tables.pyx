# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Shared parts of the compiled twins of the guardrail checks (declared in `_tables.pxd`).

The word tables: flat open-addressing tables of 64-byte slots, one cache line per word,
because a dictionary lookup and the objects behind it touch several lines and a core
that has just been idle finds none of them cached. `Tokens` holds the rule tokens of a
prompt as offsets into its marked text (made by `injection._normalization`, read by
the detector's scan, the similarity windows and the learned model); `Lexicon` maps
words to indices (the toxicity vocabulary, the rules' trigger words). Unit tests hold
every compiled function equal to its plain-Python twin.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset


cdef extern from "stdlib.h":
    void* aligned_alloc(size_t alignment, size_t size)




cdef void* _claim(void* slots, size_t size, uint64_t mask, str word):
    """Write `word` into the first empty slot of its probe sequence and return that slot
    (the caller checked `_fits`; slots are `size` bytes and begin with a `_Key`)."""
    return _claim_bytes(slots, size, mask, PyUnicode_1BYTE_DATA(word), PyUnicode_GET_LENGTH(word))


cdef void* _claim_bytes(
    void* slots, size_t size, uint64_t mask, const unsigned char* data, Py_ssize_t length
):
    """`_claim` for a word given as its bytes (at most `KEY_BYTES` of them)."""
    cdef uint64_t hashed = _fnv(data, length)
    cdef _Key* slot = <_Key*>(<char*>slots + _free_slot(slots, size, mask, hashed) * size)
    slot.hash = hashed
    slot.length = <uint8_t>length
    memcpy(slot.bytes, data, length)
    return slot


cdef class Tokens:
    """The rule tokens of a text `prepare_ascii` prepared, without building a string per
    token: each word as an offset into the marked text, with its length, its sentence
    and its `_slot_hash`. Reads as a sequence of the words (sentence marks left out);
    `stream()` gives them with the marks, as `str.split` would.
    """


    def __cinit__(self):
        self.count = 0
        self.marks = 0
        self.longest = 0

    def __dealloc__(self):
        free(self.starts)
        free(self.lengths)
        free(self.sentences)
        free(self.hashes)

    def __len__(self):
        return self.count

    def __getitem__(self, object key):
        cdef Py_ssize_t index
        if isinstance(key, slice):
            return [self[index] for index in range(*key.indices(self.count))]
        index = key
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError("token index out of range")
        return self.marked[self.starts[index] : self.starts[index] + self.lengths[index]]

    def stream(self):
        """The tokens with a NUL for each sentence mark, as in `normalization.prepare_in_python`."""
        cdef list stream = []
        cdef Py_ssize_t i, sentence = 0
        for i in range(self.count):
            while sentence < self.sentences[i]:
                stream.append("\x00")
                sentence += 1
            stream.append(self[i])
        while sentence < self.marks:
            stream.append("\x00")
            sentence += 1
        return stream


cdef int _views(object words, _Views* views) except -1:
    """Fill `views` for `words`, a list of str or a `Tokens` (see `_word_list`);
    `_free_views` frees them. The data pointers stay valid while `words` lives.
    """
    cdef Py_ssize_t count = len(words), i
    cdef Tokens prepared
    cdef str word
    views.count = count
    views.data = <const unsigned char**>malloc(max(count, 1) * sizeof(unsigned char*))
    views.lengths = <Py_ssize_t*>malloc(max(count, 1) * sizeof(Py_ssize_t))
    views.hashes = <uint64_t*>malloc(max(count, 1) * sizeof(uint64_t))
    if not views.data or not views.lengths or not views.hashes:
        _free_views(views)
        raise MemoryError()
    if type(words) is Tokens:
        prepared = <Tokens>words
        for i in range(count):
            views.data[i] = prepared.base + prepared.starts[i]
            views.lengths[i] = prepared.lengths[i]
            views.hashes[i] = prepared.hashes[i]
        return 0
    for i in range(count):
        word = <str?>(<list?>words)[i]
        views.lengths[i] = PyUnicode_GET_LENGTH(word)
        views.data[i] = (
            PyUnicode_1BYTE_DATA(word) if PyUnicode_KIND(word) == PyUnicode_1BYTE_KIND else NULL
        )
        views.hashes[i] = _slot_hash(word)
    return 0


cdef void _free_views(_Views* views):
    free(views.data)
    free(views.lengths)
    free(views.hashes)
    views.data = NULL
    views.lengths = NULL
    views.hashes = NULL


cdef void* _slots(Py_ssize_t capacity, size_t size):
    """Zeroed room for `capacity` slots of `size` bytes, from a cache-line boundary on
    (so that 64-byte slots each sit on one line)."""
    cdef void* room = aligned_alloc(64, capacity * size)
    if room is not NULL:
        memset(room, 0, capacity * size)
    return room


cdef Py_ssize_t _capacity(Py_ssize_t items):
    cdef Py_ssize_t size = 16
    while size < 2 * items:
        size *= 2
    return size


cdef class Lexicon:
    """Words and their indices in a flat open-addressing table (the toxicity model's
    vocabulary, the rules' trigger words).

    Words that do not fit a slot (more than 27 bytes, or not one byte per character)
    are kept in a dict instead.
    """


    def __cinit__(self, dict vocabulary):
        cdef Py_ssize_t capacity = _capacity(len(vocabulary))
        cdef _Term* slot
        self.slots = <_Term*>_slots(capacity, sizeof(_Term))
        if not self.slots:
            raise MemoryError()
        self.mask = capacity - 1
        self.others = {}
        for word, index in vocabulary.items():
            if not 0 <= index < 2**31:
                raise ValueError(f"the index of {word!r} is not a 32-bit one")
            if _fits(word):
                slot = <_Term*>_claim(self.slots, sizeof(_Term), self.mask, word)
                slot.index = <int32_t>index
            else:
                self.others[word] = index

    def __dealloc__(self):
        free(self.slots)

    cdef Py_ssize_t find(
        self, const unsigned char* data, Py_ssize_t length, uint64_t hashed
    ):
        """The index of the word of these one-byte characters, whose `_fnv` is `hashed`
        (it fits a slot), or -1."""
        cdef _Term* slot = <_Term*>_lookup_bytes(
            self.slots, sizeof(_Term), self.mask, data, length, hashed
        )
        return slot.index if slot is not NULL else -1

    cdef Py_ssize_t other(self, object word):
        """The index of a word that does not fit a slot, or -1."""
        cdef PyObject* found = PyDict_GetItem(self.others, word)
        return <Py_ssize_t><object>found if found is not NULL else -1
