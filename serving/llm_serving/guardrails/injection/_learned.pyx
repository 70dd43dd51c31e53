# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of `learned`: the model's per-word weights in flat tables (`Vocabulary`),
`vocabulary_logit` (`learned.Model.text_logit`) and `char_gram_sum`. Each addition
happens in the same order as in the plain-Python version, so the results are equal to
the last bit (a unit test holds them so).
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
    KEY_BYTES, Tokens, _Key, _Views, _capacity, _claim, _claim_bytes, _fits, _fnv, _free_slot, _free_views, _lookup_bytes, _pair_key, _pair_slot, _prefetch, _slot_hash, _slots, _views, _word_list,
)


cdef double _window_value(
    double word_sum, Py_ssize_t word_count, double char_sum, Py_ssize_t char_count,
    Py_ssize_t min_word, Py_ssize_t min_char, double power,
):
    cdef double value = word_sum * pow(<double>(word_count if word_count > min_word else min_word), -power)
    return value + char_sum * pow(<double>(char_count if char_count > min_char else min_char), -power)


ctypedef struct _Word:
    # One cache line per word: everything the learned model needs about it.
    _Key key
    double unigram
    double char_sum
    int32_t char_count
    int32_t pair_id  # the glossed word's number among the words of the bigrams, or -1

ctypedef struct _Gram:
    _Key key
    double weight

ctypedef struct _Pair:
    uint64_t key  # ((first + 1) << 32) | (second + 1); 0: an empty slot
    double weight


cdef class Vocabulary:
    """The learned model's per-word weights in two flat open-addressing tables.

    `words` maps a word (a token of the model) to (unigram weight, summed
    character-gram weight, character-gram count, pair id), the same values the model's
    token entries hold, with pair id the glossed word's number among the words of the
    bigrams (-1 if it starts or ends none); it must hold every word the model has a
    unigram, gloss or bigram for. `pairs` maps (first pair id, second pair id) to the
    bigram weight, and `grams` a character n-gram to its weight; `smallest`,
    `largest` and `chars` are the n-gram sizes and the characters of a word they are
    taken from (see `learned.char_grams`). A word is found with one probe that
    usually reads one cache line, where the dictionaries take several. A word the
    table lacks has no unigram or bigram weight, so its values come from its
    character n-grams alone; they are worked out here and remembered, up to
    `remember` words at a time. Words that do not fit a slot (longer than 27 bytes, or
    not one byte per character) are left to the caller's fallback.
    """

    cdef _Word* slots
    cdef _Word* seed  # the slots as built, restored when the remembered words fill up
    cdef Py_ssize_t capacity
    cdef uint64_t mask
    cdef Py_ssize_t remembered, limit
    cdef _Pair* pair_slots
    cdef uint64_t pair_mask
    cdef _Gram* grams
    cdef uint64_t gram_mask
    cdef Py_ssize_t smallest, largest, chars

    def __cinit__(
        self, dict words, dict pairs, dict grams, Py_ssize_t smallest, Py_ssize_t largest,
        Py_ssize_t chars, Py_ssize_t remember,
    ):
        cdef Py_ssize_t capacity = _capacity(len(words) + remember)
        cdef uint64_t position, key
        if not 0 < smallest <= largest or chars + 2 > KEY_BYTES:
            raise ValueError("character n-grams of these sizes do not fit a slot")
        self.slots = <_Word*>_slots(capacity, sizeof(_Word))
        self.seed = <_Word*>_slots(capacity, sizeof(_Word))
        self.pair_slots = <_Pair*>calloc(_capacity(len(pairs)), sizeof(_Pair))
        self.grams = <_Gram*>_slots(_capacity(len(grams)), sizeof(_Gram))
        if not self.slots or not self.seed or not self.pair_slots or not self.grams:
            raise MemoryError()
        self.gram_mask = _capacity(len(grams)) - 1
        self.smallest = smallest
        self.largest = largest
        self.chars = chars
        cdef _Gram* slot
        for gram, weight in grams.items():
            if _fits(gram):
                slot = <_Gram*>_claim(self.grams, sizeof(_Gram), self.gram_mask, gram)
                slot.weight = <double>weight
        self.capacity = capacity
        self.mask = capacity - 1
        self.limit = remember
        self.remembered = 0
        self.pair_mask = _capacity(len(pairs)) - 1
        for word, values in words.items():
            self.put(<str>word, <tuple>values)
        memcpy(self.seed, self.slots, capacity * sizeof(_Word))
        for (first, second), weight in pairs.items():
            key = _pair_key(first, second)
            position = _free_slot(
                self.pair_slots, sizeof(_Pair), self.pair_mask, _pair_slot(key, self.pair_mask)
            )
            self.pair_slots[position].key = key
            self.pair_slots[position].weight = <double>weight

    def __dealloc__(self):
        free(self.slots)
        free(self.seed)
        free(self.pair_slots)
        free(self.grams)

    cdef bint put(self, str word, tuple values):
        """Hold `word` with (unigram, char sum, char count, pair id); False if it cannot."""
        cdef _Word* slot
        if not _fits(word):
            return False
        slot = <_Word*>_claim(self.slots, sizeof(_Word), self.mask, word)
        slot.unigram = <double>values[0]
        slot.char_sum = <double>values[1]
        slot.char_count = <int32_t>values[2]
        slot.pair_id = <int32_t>values[3]
        return True

    cdef _Word* learn(self, const unsigned char* data, Py_ssize_t length):
        """The slot of a word that fits but is not held: its values from its character
        n-grams (summed in `learned.char_grams` order), remembered for the next time.

        At most `remember` (the constructor's argument) such words are held; then the
        table goes back to the words it was built with.
        """
        cdef unsigned char text[KEY_BYTES]
        cdef uint64_t hashes[KEY_BYTES * KEY_BYTES]
        cdef Py_ssize_t full = length, size, n, i
        cdef double total = 0.0
        cdef int32_t count = 0, grams = 0
        cdef _Gram* gram
        cdef _Word* slot
        if length > self.chars:
            length = self.chars
        text[0] = 60  # "<"
        memcpy(&text[1], data, length)
        text[length + 1] = 62  # ">"
        size = length + 2
        for n in range(self.smallest, self.largest + 1):
            for i in range(size - n + 1):
                hashes[grams] = _fnv(&text[i], n)
                _prefetch(self.grams, sizeof(_Gram), self.gram_mask, hashes[grams])
                grams += 1
        for n in range(self.smallest, self.largest + 1):
            for i in range(size - n + 1):
                gram = <_Gram*>_lookup_bytes(
                    self.grams, sizeof(_Gram), self.gram_mask, &text[i], n, hashes[count]
                )
                if gram is not NULL:
                    total += gram.weight
                else:
                    total += 0.0
                count += 1
        if self.remembered >= self.limit:
            memcpy(self.slots, self.seed, self.capacity * sizeof(_Word))
            self.remembered = 0
        self.remembered += 1
        slot = <_Word*>_claim_bytes(self.slots, sizeof(_Word), self.mask, data, full)
        slot.unigram = 0.0
        slot.char_sum = total
        slot.char_count = count
        slot.pair_id = -1
        return slot

    cdef inline _Word* find(self, const unsigned char* data, Py_ssize_t length, uint64_t hashed):
        """The slot of a word that fits, found by its `_slot_hash`, learned if need be."""
        cdef _Word* slot = <_Word*>_lookup_bytes(
            self.slots, sizeof(_Word), self.mask, data, length, hashed
        )
        return slot if slot is not NULL else self.learn(data, length)

    cdef inline void prefetch_pair(self, int32_t first, int32_t second):
        __builtin_prefetch(&self.pair_slots[_pair_slot(_pair_key(first, second), self.pair_mask)])

    cdef inline bint pair(self, int32_t first, int32_t second, double* weight):
        cdef uint64_t key = _pair_key(first, second)
        cdef uint64_t position = _pair_slot(key, self.pair_mask)
        while True:
            if self.pair_slots[position].key == key:
                weight[0] = self.pair_slots[position].weight
                return True
            if self.pair_slots[position].key == 0:
                return False
            position = (position + 1) & self.pair_mask


def vocabulary_logit(
    Vocabulary vocabulary, object words, object fallback, Py_ssize_t window, Py_ssize_t stride,
    Py_ssize_t min_word, Py_ssize_t min_char, double power,
):
    """Best window's word plus character contribution (see `learned._text_logit`).

    `words` is a sequence of str, such as a `Tokens`. The per-word values come from
    `vocabulary`, and from `fallback(word)`, which gives
    (unigram, char sum, char count, pair id), for a word it does not hold. The sums
    run in the same order as in `learned._text_logit` (prefix sums for texts longer
    than a window), so the result is equal to the last bit.
    """
    words = _word_list(words)
    cdef Py_ssize_t count = len(words), i, start, end
    if count == 0:
        return 0.0
    cdef double* unigrams = <double*>malloc(count * sizeof(double))
    cdef double* char_sums = <double*>malloc(count * sizeof(double))
    cdef double* pairs = <double*>malloc(count * sizeof(double))
    cdef int64_t* char_counts = <int64_t*>malloc(count * sizeof(int64_t))
    cdef int32_t* pair_ids = <int32_t*>malloc(count * sizeof(int32_t))
    cdef unsigned char* paired = <unsigned char*>malloc(count)
    cdef _Views views
    cdef uint64_t* hashes
    cdef double* unigram_prefix = NULL
    cdef double* pair_prefix = NULL
    cdef double* sum_prefix = NULL
    cdef Py_ssize_t* count_prefix = NULL
    cdef _Word* slot
    cdef tuple values
    cdef double unigram = 0.0, pair = 0.0, char_sum = 0.0, word_sum, value, best
    cdef Py_ssize_t char_count = 0
    views.data = NULL
    views.lengths = NULL
    views.hashes = NULL
    try:
        if (not unigrams or not char_sums or not pairs or not char_counts or not pair_ids
                or not paired):
            raise MemoryError()
        _views(words, &views)
        hashes = views.hashes
        # Three passes, each starting its loads before it needs them (see `_prefetch`):
        # the words' loads (hashed already), their lookups, then the pairs their ids make.
        for i in range(count):
            if hashes[i]:
                _prefetch(vocabulary.slots, sizeof(_Word), vocabulary.mask, hashes[i])
        for i in range(count):
            slot = vocabulary.find(views.data[i], views.lengths[i], hashes[i]) if hashes[i] else NULL
            if slot is not NULL:
                unigrams[i] = slot.unigram
                char_sums[i] = slot.char_sum
                char_counts[i] = slot.char_count
                pair_ids[i] = slot.pair_id
            else:
                values = <tuple>fallback(words[i])
                unigrams[i] = <double>values[0]
                char_sums[i] = <double>values[1]
                char_counts[i] = <int64_t>values[2]
                pair_ids[i] = <int32_t>values[3]
        for i in range(1, count):
            if pair_ids[i - 1] >= 0 and pair_ids[i] >= 0:
                vocabulary.prefetch_pair(pair_ids[i - 1], pair_ids[i])
        paired[0] = False
        for i in range(1, count):
            paired[i] = (
                pair_ids[i - 1] >= 0 and pair_ids[i] >= 0
                and vocabulary.pair(pair_ids[i - 1], pair_ids[i], &pairs[i])
            )
        if count <= window:
            for i in range(count):
                unigram += unigrams[i]
                char_sum += char_sums[i]
                char_count += char_counts[i]
                if paired[i]:
                    pair += pairs[i]
            return _window_value(unigram + pair, 2 * count - 1, char_sum, char_count, min_word, min_char, power)
        unigram_prefix = <double*>malloc((count + 1) * sizeof(double))
        pair_prefix = <double*>malloc(count * sizeof(double))
        sum_prefix = <double*>malloc((count + 1) * sizeof(double))
        count_prefix = <Py_ssize_t*>malloc((count + 1) * sizeof(Py_ssize_t))
        if not unigram_prefix or not pair_prefix or not sum_prefix or not count_prefix:
            raise MemoryError()
        unigram_prefix[0] = 0.0
        pair_prefix[0] = 0.0
        sum_prefix[0] = 0.0
        count_prefix[0] = 0
        for i in range(count):
            unigram_prefix[i + 1] = unigram_prefix[i] + unigrams[i]
            sum_prefix[i + 1] = sum_prefix[i] + char_sums[i]
            count_prefix[i + 1] = count_prefix[i] + char_counts[i]
            if i:
                pair_prefix[i] = pair_prefix[i - 1] + (pairs[i] if paired[i] else 0.0)
        best = -1e308
        start = 0
        while True:
            if start > count - window:
                start = count - window
            end = start + window
            word_sum = unigram_prefix[end] - unigram_prefix[start]
            word_sum += pair_prefix[end - 1] - pair_prefix[start]
            value = _window_value(
                word_sum, 2 * window - 1, sum_prefix[end] - sum_prefix[start],
                count_prefix[end] - count_prefix[start], min_word, min_char, power,
            )
            if value > best:
                best = value
            if start == count - window:
                break
            start += stride
        return best
    finally:
        free(unigrams)
        free(char_sums)
        free(pairs)
        free(char_counts)
        free(pair_ids)
        free(paired)
        _free_views(&views)
        free(unigram_prefix)
        free(pair_prefix)
        free(sum_prefix)
        free(count_prefix)


def char_gram_sum(str token, dict weights, Py_ssize_t smallest, Py_ssize_t largest, Py_ssize_t chars):
    """Summed weight and count of a token's character n-grams (see `learned.char_grams`)."""
    cdef str word = "<" + token[:chars] + ">"
    cdef Py_ssize_t size = len(word), n, i, count = 0
    cdef double total = 0.0
    cdef PyObject* found
    for n in range(smallest, largest + 1):
        for i in range(size - n + 1):
            found = PyDict_GetItem(weights, word[i : i + n])
            if found is not NULL:
                total += <double><object>found
            else:
                total += 0.0
            count += 1
    return total, count
