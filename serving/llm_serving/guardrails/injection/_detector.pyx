# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of the detector's token scan: `scan` reads the rule tokens of a prompt
once and picks the rules whose trigger groups meet in a sentence (`Triggers`), the
plain-Python `detector.scan_and_gate_in_python` to the result (a unit test holds them so).
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
    Lexicon, Tokens, _Views, _free_views, _views, _word_list,
)


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
    reference is `detector.gate_in_python` over `detector.scan_in_python`; this one
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
