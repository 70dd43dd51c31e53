# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled inner loops of the guardrail checks.

For the prompt-injection scorers: `prepare_ascii` is the normalisation, and it hands
over the rule tokens as a `Tokens` (offsets into the marked text, with their hashes)
instead of a string per token; `scan` is the token scan that also picks the rules
whose trigger words meet (`Triggers`); `vocabulary_logit` is
`learned.Model.text_logit` and `best` is `injection.SimilarityIndex.best`. The last
two read the per-word weights from flat open-addressing tables (`Vocabulary`,
`Features`) with one slot of 64 bytes, one cache line, per word, because a
dictionary lookup and the objects behind it touch several lines and a core that has
just been idle finds none of them cached; the lookups of a prompt's words start all
their loads first (`_prefetch`), so that the waits for memory overlap. Each addition
happens in the same order as in the plain-Python versions, so the results are equal
to the last bit.

For the PII scan, `Needles` finds which of a few gate words occur in one pass and
`digit_bounds` where a text's digits start and end; for the toxicity check,
`toxicity_segments` splits a completion into segments of known words (`Lexicon`).

Unit tests hold every function here equal to its plain-Python version, which the
package falls back to when this module was not built (no C compiler at install time).
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


cdef double _window_value(
    double word_sum, Py_ssize_t word_count, double char_sum, Py_ssize_t char_count,
    Py_ssize_t min_word, Py_ssize_t min_char, double power,
):
    cdef double value = word_sum * pow(<double>(word_count if word_count > min_word else min_word), -power)
    return value + char_sum * pow(<double>(char_count if char_count > min_char else min_char), -power)


# ----------------------------------------------------------------------------- vocabulary

cdef enum:
    KEY_BYTES = 27

ctypedef struct _Key:
    # The head of a slot in the word tables: the word's hash (0: an empty slot) and bytes.
    uint64_t hash
    uint8_t length
    char bytes[KEY_BYTES]

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


cdef enum:
    # The longest text `prepare_ascii` takes: its marked text (at most three times as
    # long) must fit the 32-bit offsets of `Tokens`.
    MAX_PREPARED = 600_000_000


cdef class Tokens:
    """The rule tokens of a text `prepare_ascii` prepared, without building a string per
    token: each word as an offset into the marked text, with its length, its sentence
    and its `_slot_hash`. Reads as a sequence of the words (sentence marks left out);
    `stream()` gives them with the marks, as `str.split` would.
    """

    cdef str marked
    cdef const unsigned char* base
    cdef int32_t* starts
    cdef int32_t* lengths
    cdef int32_t* sentences  # the number of marks before each word
    cdef uint64_t* hashes
    cdef Py_ssize_t count
    cdef Py_ssize_t marks
    cdef readonly Py_ssize_t longest
    """The longest token's length, sentence marks included (0 without tokens)."""

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
        """The tokens with a NUL for each sentence mark, as in `injection.prepare_in_python`."""
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


ctypedef struct _Views:
    # The words of a text as the scorers read them: per word its one-byte characters
    # (NULL when it has wider ones), its length and its `_slot_hash` (0: no slot fits it).
    Py_ssize_t count
    const unsigned char** data
    Py_ssize_t* lengths
    uint64_t* hashes


cdef inline object _word_list(object words):
    """`words` itself if it is a list or a `Tokens`, else the list of its items."""
    return words if type(words) is list or type(words) is Tokens else list(words)


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


# ----------------------------------------------------------------------------- similarity

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

    See `injection.SimilarityIndex.best_in_python`, whose sums this repeats in the
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


ctypedef struct _Term:
    # A word of the toxicity vocabulary and its index.
    _Key key
    int32_t index


cdef class Lexicon:
    """Words and their indices in a flat open-addressing table (the toxicity model's
    vocabulary, the rules' trigger words).

    Words that do not fit a slot (more than 27 bytes, or not one byte per character)
    are kept in a dict instead.
    """

    cdef _Term* slots
    cdef uint64_t mask
    cdef dict others

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

    cdef inline Py_ssize_t find(
        self, const unsigned char* data, Py_ssize_t length, uint64_t hashed
    ):
        """The index of the word of these one-byte characters, whose `_fnv` is `hashed`
        (it fits a slot), or -1."""
        cdef _Term* slot = <_Term*>_lookup_bytes(
            self.slots, sizeof(_Term), self.mask, data, length, hashed
        )
        return slot.index if slot is not NULL else -1

    cdef inline Py_ssize_t other(self, object word):
        """The index of a word that does not fit a slot, or -1."""
        cdef PyObject* found = PyDict_GetItem(self.others, word)
        return <Py_ssize_t><object>found if found is not NULL else -1


cdef class Triggers:
    """The rules' trigger words (a `Lexicon`, one probe per token of a prompt), each with
    the numbers of the trigger groups that hold it.

    `word_groups` maps a trigger word to the numbers of its groups, the groups
    numbered rule by rule; `rule_groups` holds per rule (first group, group count).
    """

    cdef Lexicon words  # trigger word -> its place in `first` and `count`
    cdef int32_t* first  # per trigger word: where its group numbers start in `numbers`
    cdef int32_t* count
    cdef int32_t* numbers
    cdef list rule_groups
    cdef Py_ssize_t groups

    def __cinit__(self, dict word_groups, list rule_groups):
        cdef Py_ssize_t first, count, total = 0, group, index
        self.groups = 0
        for first, count in rule_groups:
            if first < 0 or count < 0:
                raise ValueError("rule groups must be (first, count) with neither negative")
            if first + count > self.groups:
                self.groups = first + count
        self.rule_groups = [(first, count) for first, count in rule_groups]
        for word, numbers in word_groups.items():
            for group in numbers:
                if not 0 <= group < self.groups:
                    raise ValueError(f"group {group} of {word!r} is not a rule's group")
            total += len(numbers)
        self.words = Lexicon({word: index for index, word in enumerate(word_groups)})
        self.first = <int32_t*>malloc(max(len(word_groups), 1) * sizeof(int32_t))
        self.count = <int32_t*>malloc(max(len(word_groups), 1) * sizeof(int32_t))
        self.numbers = <int32_t*>malloc(max(total, 1) * sizeof(int32_t))
        if not self.first or not self.count or not self.numbers:
            raise MemoryError()
        total = 0
        for index, numbers in enumerate(word_groups.values()):
            self.first[index] = <int32_t>total
            self.count[index] = <int32_t>len(numbers)
            for group in numbers:
                self.numbers[total] = <int32_t>group
                total += 1

    def __dealloc__(self):
        free(self.first)
        free(self.count)
        free(self.numbers)


def scan(object stream, Triggers triggers, str mark):
    """One pass over the rule tokens of a prompt, and the rules whose trigger groups meet.

    `stream` is the rule tokens of the marked text, either a list, `mark` standing for
    a sentence boundary, or a `Tokens`. Returns the words without sentence marks (the
    `Tokens` itself, or a list), the longest token's length, the number of blocks of 64
    sentences, and [(rule number, [bits per block of the sentences that hold a word of
    every one of its groups]), ...] in rule order, for the rules with at least one
    group, every group met somewhere in the prompt. The plain-Python version and
    reference is `injection.gate_in_python` over `injection.scan_in_python`; this one
    ORs each trigger token's sentence bit straight into its groups, with no dict per
    block.
    """
    cdef Py_ssize_t groups = triggers.groups, longest = 0, marks = 0, count, i, length
    cdef Py_ssize_t blocks, block, k, j, rule, first, sentence, index
    cdef uint64_t seen, where
    cdef uint64_t* row
    cdef object words
    cdef list tokens
    cdef Tokens prepared
    cdef _Views views
    cdef int32_t* sentences = NULL
    cdef uint64_t* table = NULL
    cdef list met = [], wheres
    views.data = NULL
    views.lengths = NULL
    views.hashes = NULL
    try:
        if type(stream) is Tokens:
            prepared = <Tokens>stream
            words = prepared
            longest = prepared.longest
            marks = prepared.marks
            sentences = prepared.sentences
        else:
            # Words and their sentences out of the list.
            tokens = []
            count = len(<list?>stream)
            sentences = <int32_t*>malloc(max(count, 1) * sizeof(int32_t))
            if not sentences:
                raise MemoryError()
            for token in <list>stream:
                length = len(<str?>token)
                if length > longest:
                    longest = length
                if token == mark:
                    marks += 1
                    continue
                sentences[len(tokens)] = <int32_t>marks
                tokens.append(token)
            words = tokens
        _views(words, &views)
        blocks = marks // 64 + 1
        table = <uint64_t*>calloc(max(groups * blocks, 1), sizeof(uint64_t))
        if not table:
            raise MemoryError()
        for i in range(views.count):
            if views.hashes[i]:
                index = triggers.words.find(views.data[i], views.lengths[i], views.hashes[i])
            else:
                index = triggers.words.other(words[i])
            if index < 0:
                continue
            sentence = sentences[i]
            row = table + (sentence // 64) * groups
            for k in range(triggers.first[index], triggers.first[index] + triggers.count[index]):
                row[triggers.numbers[k]] |= (<uint64_t>1) << (sentence % 64)
        if groups:
            for rule in range(len(triggers.rule_groups)):
                first, count = triggers.rule_groups[rule]
                if count == 0:
                    continue
                for j in range(count):
                    seen = 0
                    for block in range(blocks):
                        seen |= table[block * groups + first + j]
                    if seen == 0:
                        break
                else:
                    wheres = []
                    for block in range(blocks):
                        where = ~(<uint64_t>0)
                        for j in range(count):
                            where &= table[block * groups + first + j]
                        wheres.append(where)
                    met.append((rule, wheres))
        return words, longest, blocks, met
    finally:
        if type(stream) is not Tokens:
            free(sentences)
        free(table)
        _free_views(&views)


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
    """`injection.normalize`, `_mark_sentences` and the rule tokens of ASCII text, in one go.

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


# ----------------------------------------------------------------------------- toxicity

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
