# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of `similarity`: the exemplar weights in flat tables (`Features`) and
`best`, `similarity.SimilarityIndex.best` over sliding windows, equal to the
plain-Python `best_in_python` to the last bit (a unit test holds them so).
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
    KEY_BYTES, Tokens, _Key, _Views, _capacity, _claim, _fits, _fnv, _free_slot, _free_views, _lookup_bytes, _pair_key, _pair_slot, _prefetch, _slot_hash, _slots, _views, _word_list,
)



ctypedef struct _Feature:
    # One cache line per word of the similarity index.
    _Key key
    double norm2  # squared unigram weight
    int32_t start  # its (exemplar, contribution) pairs: start and count in the row arrays
    int32_t count
    int32_t id

ctypedef struct _FeaturePair:
    uint64_t key  # ((first id + 1) << 32) | (second id + 1); 0: an empty slot
    double norm2
    int32_t start
    int32_t count


cdef class Features:
    """The similarity index's words and word pairs in flat open-addressing tables.

    `words` maps a word to (id, squared unigram weight, sparse row) and `pairs` maps
    (first id, second id) to (squared bigram weight, sparse row), where a sparse row
    is ((exemplar, contribution), ...); `oov_norm2` and `unknown_norm2` weigh a word
    and a pair the index lacks. Words that do not fit a slot (more than 27 bytes, or
    not one byte per character) are found through a dictionary instead.
    """

    cdef _Feature* slots
    cdef uint64_t mask
    cdef _FeaturePair* pair_slots
    cdef uint64_t pair_mask
    cdef int32_t* exemplars
    cdef double* contributions
    cdef double* id_norm2
    cdef int32_t* id_start
    cdef int32_t* id_count
    cdef dict other_ids
    cdef double oov_norm2
    cdef double unknown_norm2
    cdef Py_ssize_t width  # one more than the highest exemplar a row names

    def __cinit__(self, dict words, dict pairs, double oov_norm2, double unknown_norm2):
        cdef Py_ssize_t capacity = _capacity(len(words)), pair_capacity = _capacity(len(pairs))
        cdef Py_ssize_t cells = 0, used = 0, ids = len(words)
        cdef int32_t start, identity
        cdef uint64_t position, key
        cdef _Feature* slot
        cdef str word
        for values in words.values():
            cells += len(values[2])
        for values in pairs.values():
            cells += len(values[1])
        self.slots = <_Feature*>_slots(capacity, sizeof(_Feature))
        self.pair_slots = <_FeaturePair*>calloc(pair_capacity, sizeof(_FeaturePair))
        self.exemplars = <int32_t*>malloc((cells + 1) * sizeof(int32_t))
        self.contributions = <double*>malloc((cells + 1) * sizeof(double))
        self.id_norm2 = <double*>malloc((ids + 1) * sizeof(double))
        self.id_start = <int32_t*>malloc((ids + 1) * sizeof(int32_t))
        self.id_count = <int32_t*>malloc((ids + 1) * sizeof(int32_t))
        if (not self.slots or not self.pair_slots or not self.exemplars or not self.contributions
                or not self.id_norm2 or not self.id_start or not self.id_count):
            raise MemoryError()
        self.mask = capacity - 1
        self.pair_mask = pair_capacity - 1
        self.other_ids = {}
        self.oov_norm2 = oov_norm2
        self.unknown_norm2 = unknown_norm2
        for word, (identity_object, norm2, row) in words.items():
            identity = <int32_t>identity_object
            if not 0 <= identity < ids:
                raise ValueError("word ids must number the words from 0")
            start = <int32_t>used
            for exemplar, contribution in row:
                self._cell(used, exemplar, contribution)
                used += 1
            self.id_norm2[identity] = <double>norm2
            self.id_start[identity] = start
            self.id_count[identity] = <int32_t>(used - start)
            if not _fits(word):
                self.other_ids[word] = identity
                continue
            slot = <_Feature*>_claim(self.slots, sizeof(_Feature), self.mask, word)
            slot.norm2 = <double>norm2
            slot.start = start
            slot.count = <int32_t>(used - start)
            slot.id = identity
        for (first, second), (norm2, row) in pairs.items():
            key = _pair_key(first, second)
            position = _free_slot(
                self.pair_slots, sizeof(_FeaturePair), self.pair_mask,
                _pair_slot(key, self.pair_mask),
            )
            start = <int32_t>used
            for exemplar, contribution in row:
                self._cell(used, exemplar, contribution)
                used += 1
            self.pair_slots[position].key = key
            self.pair_slots[position].norm2 = <double>norm2
            self.pair_slots[position].start = start
            self.pair_slots[position].count = <int32_t>(used - start)

    cdef void _cell(self, Py_ssize_t used, object exemplar, object contribution) except *:
        if exemplar < 0:
            raise ValueError("exemplar numbers must not be negative")
        self.exemplars[used] = <int32_t>exemplar
        self.contributions[used] = <double>contribution
        if exemplar >= self.width:
            self.width = exemplar + 1

    def __dealloc__(self):
        free(self.slots)
        free(self.pair_slots)
        free(self.exemplars)
        free(self.contributions)
        free(self.id_norm2)
        free(self.id_start)
        free(self.id_count)

    cdef inline int32_t word(
        self, object words, Py_ssize_t position, _Views* views, double* norm2, int32_t* start,
        int32_t* count,
    ):
        """The id (-1 if unknown) of the word at `position` of `words` (whose `views`
        these are), with its squared weight and row."""
        cdef _Feature* slot
        cdef PyObject* found
        cdef int32_t identity
        cdef uint64_t hashed = views.hashes[position]
        if hashed:
            slot = <_Feature*>_lookup_bytes(
                self.slots, sizeof(_Feature), self.mask, views.data[position],
                views.lengths[position], hashed,
            )
            if slot is not NULL:
                norm2[0] = slot.norm2
                start[0] = slot.start
                count[0] = slot.count
                return slot.id
        else:
            found = PyDict_GetItem(self.other_ids, words[position])
            if found is not NULL:
                identity = <int32_t><object>found
                norm2[0] = self.id_norm2[identity]
                start[0] = self.id_start[identity]
                count[0] = self.id_count[identity]
                return identity
        norm2[0] = self.oov_norm2
        count[0] = 0
        start[0] = 0
        return -1

    cdef inline void prefetch_pair(self, int32_t first, int32_t second):
        if first >= 0 and second >= 0:
            __builtin_prefetch(
                &self.pair_slots[_pair_slot(_pair_key(first, second), self.pair_mask)]
            )

    cdef inline void prefetch_row(self, int32_t start, int32_t count):
        if count:
            __builtin_prefetch(&self.exemplars[start])
            __builtin_prefetch(&self.contributions[start])

    cdef inline void pair(self, int32_t first, int32_t second, double* norm2, int32_t* start, int32_t* count):
        """The pair's squared weight and row (the unknown pair's weight if it is not held)."""
        cdef uint64_t key, position
        if first >= 0 and second >= 0:
            key = _pair_key(first, second)
            position = _pair_slot(key, self.pair_mask)
            while self.pair_slots[position].key != 0:
                if self.pair_slots[position].key == key:
                    norm2[0] = self.pair_slots[position].norm2
                    start[0] = self.pair_slots[position].start
                    count[0] = self.pair_slots[position].count
                    return
                position = (position + 1) & self.pair_mask
        norm2[0] = self.unknown_norm2
        start[0] = 0
        count[0] = 0

    cdef inline bint add_row(self, double* target, int32_t start, int32_t count):
        """Add one sparse row to the dot products; True if it was not empty."""
        cdef int32_t k
        for k in range(start, start + count):
            target[self.exemplars[k]] += self.contributions[k]
        return count > 0


def best(
    object tokens, Features features, Py_ssize_t window, Py_ssize_t stride, Py_ssize_t exemplars,
):
    """Highest cosine between a window of `tokens` (a sequence of str, such as a
    `Tokens`) and an exemplar.

    See `similarity.SimilarityIndex.best_in_python`, whose sums this repeats in the
    same order. Blocks are visited in order with one dot-product vector for the
    current block and one for the previous, so memory does not grow with the text.
    """
    tokens = _word_list(tokens)
    cdef Py_ssize_t total = len(tokens), position, block, first, last, blocks, size, exemplar
    if exemplars < features.width:
        raise ValueError(f"the rows name {features.width} exemplars, not {exemplars}")
    if total == 0 or exemplars == 0:
        return 0.0
    # Per position: the word's squared weight and row, and those of the pair ending there.
    cdef double* norm2 = <double*>malloc(total * sizeof(double))
    cdef int32_t* starts = <int32_t*>malloc(4 * total * sizeof(int32_t))
    cdef double* pair_norm2 = <double*>malloc(total * sizeof(double))
    cdef int32_t* ids = <int32_t*>malloc(total * sizeof(int32_t))
    cdef double* previous = <double*>calloc(exemplars, sizeof(double))
    cdef double* current = <double*>calloc(exemplars, sizeof(double))
    cdef _Views views
    cdef int32_t* counts
    cdef int32_t* pair_starts
    cdef int32_t* pair_counts
    cdef double* swap
    cdef double previous_norm2 = 0.0, current_norm2, position_norm2, top, norm, value
    cdef double result = 0.0
    cdef bint previous_any = False, current_any
    views.data = NULL
    views.lengths = NULL
    views.hashes = NULL
    try:
        if not norm2 or not starts or not pair_norm2 or not ids or not previous or not current:
            raise MemoryError()
        _views(tokens, &views)
        counts = starts + total
        pair_starts = starts + 2 * total
        pair_counts = starts + 3 * total
        # Each pass starts the loads the next one needs (see `_prefetch`): the words'
        # (hashed already), their lookups, the pairs' lookups, then the rows.
        for position in range(total):
            if views.hashes[position]:
                _prefetch(features.slots, sizeof(_Feature), features.mask, views.hashes[position])
        for position in range(total):
            ids[position] = features.word(
                tokens, position, &views, &norm2[position], &starts[position], &counts[position],
            )
            features.prefetch_row(starts[position], counts[position])
        for position in range(1, total):
            features.prefetch_pair(ids[position - 1], ids[position])
        for position in range(1, total):
            features.pair(
                ids[position - 1], ids[position], &pair_norm2[position],
                &pair_starts[position], &pair_counts[position],
            )
            features.prefetch_row(pair_starts[position], pair_counts[position])
        size = stride if total > window else total  # one block when the text fits a window
        blocks = (total + size - 1) // size
        for block in range(blocks):
            first = block * size
            last = first + size if first + size < total else total
            for exemplar in range(exemplars):
                current[exemplar] = 0.0
            current_norm2 = 0.0
            for position in range(first, last):
                position_norm2 = norm2[position]
                if position:
                    position_norm2 = position_norm2 + pair_norm2[position]
                current_norm2 += position_norm2
            # Unigram contributions first, then bigram ones, as in the Python version.
            current_any = False
            for position in range(first, last):
                if features.add_row(current, starts[position], counts[position]):
                    current_any = True
            for position in range(first if first else 1, last):
                if features.add_row(current, pair_starts[position], pair_counts[position]):
                    current_any = True
            if total <= window:
                norm = sqrt(current_norm2)
                if not current_any or not norm > 0:
                    return 0.0
                top = current[0]
                for exemplar in range(1, exemplars):
                    if current[exemplar] > top:
                        top = current[exemplar]
                return top / norm
            if block and (previous_any or current_any):  # the window (block - 1, block)
                top = previous[0] + current[0]
                for exemplar in range(1, exemplars):
                    value = previous[exemplar] + current[exemplar]
                    if value > top:
                        top = value
                norm = sqrt(previous_norm2 + current_norm2)
                if norm == 0.0:
                    norm = 1.0
                if top / norm > result:
                    result = top / norm
            swap = previous
            previous = current
            current = swap
            previous_norm2 = current_norm2
            previous_any = current_any
        return result
    finally:
        free(norm2)
        free(starts)
        free(pair_norm2)
        free(ids)
        free(previous)
        free(current)
        _free_views(&views)
