/* _textscan: the classifier's per-text character work in one pass over an ASCII text (optional C extension).
 *
 * `router/routing/textscan.py` is the reference: its pure-Python functions define every result, it imports
 * this module when it was compiled, and tests/test_textscan.py checks both give identical results. Only
 * ASCII text (one byte per character: CPython's `str.isascii()` flag, O(1)) is walked here; for anything
 * else the Python function passed as `fallback` gives the first six results (None without one) and the
 * rest are counted here from its hits and marks.
 *
 * Scanner(words, separators, fallback)
 *     words: iterable of bytes (the vocabulary; the scanner keeps a reference to each), separators: bytes
 *     (the bytes that split words), fallback: callable(text) -> (lowered, hits, marks, spaces, stops, plain)
 *     for non-ASCII text, or None.
 * Scanner(words, separators, fallback, glue=b"", counted=(), indexed=(), asked=b"", probes=())
 *     glue: bytes that are neither separators nor word characters (`plain` below); counted: a sequence of
 *     iterables of vocabulary words (categories); indexed: a sequence of dicts, vocabulary word -> object;
 *     asked: bytes (punctuation worth reporting); probes: a sequence of ASCII bytes (substrings to look for)
 * Scanner.scan(text) -> (lowered, hits, marks, spaces, stops, plain, counts, found, present, probed)
 *     lowered  text.lower() (a new str)
 *     hits     frozenset of the vocabulary's own bytes objects that are words of `lowered` (maximal runs
 *              of non-separator bytes); no object is made per word: each span is hashed (FNV-1a) while
 *              walking and looked up in an open-addressing table built once from the vocabulary
 *     marks    bytes: `lowered`'s bytes but a-z and " " (its digits, punctuation, control characters)
 *     spaces   text.count(" ")
 *     stops    text.count(". ") + text.count(".\n")
 *     plain    True when no byte of `lowered` is in `glue` (then every word boundary is a separator)
 *     counts   tuple: per category of `counted`, how many of its words are in `hits` (counted once each
 *              when a hit is first added)
 *     found    tuple: per dict of `indexed`, the tuple of its values for the keys in `hits`, in the order of
 *              the keys (bytes order)
 *     present  bytes: the bytes of `asked` that are in `marks`, ascending
 *     probed   0, 1 or 2: how many probes occur in `text`, counting stops at 2 (a probe is looked for only
 *              when its first byte that is not a letter, if it has one, is in `marks`; from its rarest byte)
 * ascii_counts(text) -> (spaces, newlines, digits) of an ASCII text, None for any other.
 * fold(text) -> an ASCII text's bytes lower-cased, without " \t\n\r\x0b\x0c" (None for any other text).
 * bands(texts, params) -> (estimate, low, high) token bands of a list of texts, each ASCII and at most
 *     params[10] characters, from their spaces, newlines and digits (None when one is not: see bands_python).
 *
 * Memory: every index is bounded by the text's length; the marks buffer is as long as the text (on the
 * stack up to STACK_MARKS bytes, else PyMem); the table holds one strong reference per distinct word, per
 * indexed value and per probe and drops them in dealloc; the per-scan buffers (category counts, the hits
 * with values) are the scanner's, sized at construction (a word is a hit once per scan). The type holds no
 * reference back to itself, so it needs no GC support (its indexed values must not refer to it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL
#define STACK_MARKS 2048
/* what Scanner() takes and scan() returns; textscan.py's API must equal it, else (an in-tree build older than
   the Python code, after a pull without a reinstall) textscan.py runs its Python functions instead */
#define TEXTSCAN_API 5

typedef struct {
    uint64_t hash;
    Py_ssize_t len;
    const char *data; /* the word's bytes (owned by `word`) */
    PyObject *word;   /* strong reference; NULL: an empty slot */
    uint64_t seen;    /* the scan that last added it to its hits (`Scanner.scans`): each word is added once */
    Py_ssize_t cat0;  /* its categories are cats[cat0 : cat0 + ncat] */
    Py_ssize_t ncat;
    Py_ssize_t row;   /* its indexed values are values[row * nindexed ...], or -1: none */
} Slot;

typedef struct {
    const char *data; /* owned by `Scanner.probes` */
    Py_ssize_t len;
    int gate;         /* its first byte that is not a letter or " " (-1: none): it must be among the marks */
    Py_ssize_t at;    /* the offset of its rarest byte, the one searched for with memchr */
} Probe;

/* per byte of a lower-cased ASCII text: SEP ends a word, MARK goes to `marks` (all but a-z and " ") */
enum { SEP = 1, MARK = 2, GLUE = 4 };

typedef struct {
    PyObject_HEAD
    Slot *slots;
    size_t mask;          /* slots - 1, a power of two minus one */
    Py_ssize_t max_len;   /* the longest word: longer spans are not looked up */
    PyObject *fallback;   /* strong reference: a callable or None */
    uint64_t scans;       /* scans so far (the GIL serialises them: nothing in a scan runs Python code) */
    Py_ssize_t *cats;     /* the categories of every counted word, slot by slot (Slot.cat0) */
    Py_ssize_t ncounted;  /* categories */
    Py_ssize_t *counts;   /* per scan: its count per category */
    Py_ssize_t nindexed;  /* dicts of `indexed` */
    PyObject **values;    /* rows of nindexed strong references (or NULL), one row per word with any value */
    Py_ssize_t rows;
    Py_ssize_t *found;    /* per scan: the slots of its hits with a row */
    unsigned char asked[256];  /* the bytes of `asked`, ascending */
    int nasked;
    PyObject *probes;     /* strong reference: a tuple of the probes' bytes */
    PyObject *probe_strs; /* strong reference: the same as str (looked for in a text that is not ASCII) */
    Probe *probe;
    Py_ssize_t nprobes;
    unsigned char kind[256];  /* SEP | MARK | GLUE per byte */
} Scanner;

static uint64_t
fnv1a(const unsigned char *p, Py_ssize_t n)
{
    uint64_t h = FNV_OFFSET;
    for (Py_ssize_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * FNV_PRIME;
    }
    return h;
}

static void
Scanner_dealloc(Scanner *self)
{
    if (self->slots != NULL) {
        for (size_t i = 0; i <= self->mask; i++) {
            Py_XDECREF(self->slots[i].word);
        }
        PyMem_Free(self->slots);
    }
    if (self->values != NULL) {
        for (Py_ssize_t i = 0; i < self->rows * self->nindexed; i++) {
            Py_XDECREF(self->values[i]);
        }
        PyMem_Free(self->values);
    }
    PyMem_Free(self->cats);
    PyMem_Free(self->counts);
    PyMem_Free(self->found);
    PyMem_Free(self->probe);
    Py_XDECREF(self->probes);
    Py_XDECREF(self->probe_strs);
    Py_XDECREF(self->fallback);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* a[:n] == b[:n], inline (the words are short: a call to memcmp costs more than the compare) */
static inline int
same(const char *a, const char *b, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return 0;
        }
    }
    return 1;
}

/* The slot of the vocabulary's word equal to data[:len] (hashed: h), or NULL */
static Slot *
lookup(Scanner *self, const char *data, Py_ssize_t len, uint64_t h)
{
    if (len > self->max_len) {
        return NULL;
    }
    size_t j = (size_t)h & self->mask;
    for (;;) {
        Slot *s = &self->slots[j];
        if (s->word == NULL) {
            return NULL;
        }
        if (s->hash == h && s->len == len && same(s->data, data, len)) {
            return s;
        }
        j = (j + 1) & self->mask;
    }
}

/* The slot of a vocabulary word given as a bytes object (ValueError naming `what` if it is not one) */
static Slot *
slot_of(Scanner *self, PyObject *w, const char *what)
{
    if (!PyBytes_Check(w)) {
        PyErr_Format(PyExc_TypeError, "%s words must be bytes", what);
        return NULL;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(w);
    Slot *s = lookup(self, PyBytes_AS_STRING(w), len, fnv1a((const unsigned char *)PyBytes_AS_STRING(w), len));
    if (s == NULL) {
        PyErr_Format(PyExc_ValueError, "%s words must be words of the vocabulary", what);
    }
    return s;
}

/* the vocabulary's table from a list of bytes. 0, or -1 on error */
static int
build_words(Scanner *self, PyObject *list)
{
    Py_ssize_t n = PyList_GET_SIZE(list);
    size_t size = 8;
    while (size < (size_t)n * 2 + 1) {
        size <<= 1;
    }
    self->slots = PyMem_Calloc(size, sizeof(Slot));
    if (self->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->mask = size - 1;
    self->max_len = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyList_GET_ITEM(list, i);
        if (!PyBytes_Check(w)) {
            PyErr_SetString(PyExc_TypeError, "words must be bytes");
            return -1;
        }
        const char *data = PyBytes_AS_STRING(w);
        Py_ssize_t len = PyBytes_GET_SIZE(w);
        uint64_t h = fnv1a((const unsigned char *)data, len);
        size_t j = (size_t)h & self->mask;
        while (self->slots[j].word != NULL) {
            Slot *s = &self->slots[j];
            if (s->hash == h && s->len == len && memcmp(s->data, data, (size_t)len) == 0) {
                break; /* a repeated word */
            }
            j = (j + 1) & self->mask;
        }
        if (self->slots[j].word == NULL) {
            Py_INCREF(w);
            self->slots[j] = (Slot){h, len, data, w, 0, 0, 0, -1};
            if (len > self->max_len) {
                self->max_len = len;
            }
        }
    }
    return 0;
}

/* Slot.cat0/ncat and `cats` from the categories (a list of lists of words): two passes, one counting each
   slot's categories, one filling them in (a word repeated in a category counts once). 0, or -1 on error */
static int
build_counted(Scanner *self, PyObject *lists)
{
    Py_ssize_t ncat = PyList_GET_SIZE(lists), total = 0;
    self->ncounted = ncat;
    self->counts = PyMem_Calloc((size_t)ncat + 1, sizeof(Py_ssize_t));
    if (self->counts == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t j = 0; j <= self->mask; j++) {
            self->slots[j].ncat = 0;
        }
        for (Py_ssize_t c = 0; c < ncat; c++) {
            PyObject *words = PyList_GET_ITEM(lists, c);
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(words); i++) {
                Slot *s = slot_of(self, PyList_GET_ITEM(words, i), "counted");
                if (s == NULL) {
                    return -1;
                }
                if (pass == 0) {
                    if (s->ncat == 0 || s->cat0 != c) { /* cat0: the last category seen, in this pass */
                        s->ncat++;
                        s->cat0 = c;
                    }
                }
                else if (s->ncat == 0 || self->cats[s->cat0 + s->ncat - 1] != c) {
                    self->cats[s->cat0 + s->ncat++] = c;
                }
            }
        }
        if (pass == 0) { /* each slot's first category's place, then the room they need */
            for (size_t j = 0; j <= self->mask; j++) {
                self->slots[j].cat0 = total;
                total += self->slots[j].ncat;
            }
            self->cats = PyMem_Calloc((size_t)total + 1, sizeof(Py_ssize_t));
            if (self->cats == NULL) {
                PyErr_NoMemory();
                return -1;
            }
        }
    }
    return 0;
}

/* `values` from the indexed dicts (a list of dicts): a row per word with a value in any of them. 0, or -1 */
static int
build_indexed(Scanner *self, PyObject *dicts)
{
    Py_ssize_t k = PyList_GET_SIZE(dicts);
    self->nindexed = k;
    self->rows = 0;
    for (Py_ssize_t d = 0; d < k; d++) {
        if (!PyDict_Check(PyList_GET_ITEM(dicts, d))) {
            PyErr_SetString(PyExc_TypeError, "indexed must be a sequence of dicts");
            return -1;
        }
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(PyList_GET_ITEM(dicts, d), &pos, &key, &value)) {
            Slot *s = slot_of(self, key, "indexed");
            if (s == NULL) {
                return -1;
            }
            if (s->row < 0) {
                s->row = self->rows++;
            }
        }
    }
    self->values = PyMem_Calloc((size_t)(self->rows * k) + 1, sizeof(PyObject *));
    self->found = PyMem_Calloc((size_t)self->rows + 1, sizeof(Py_ssize_t));
    if (self->values == NULL || self->found == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t d = 0; d < k; d++) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(PyList_GET_ITEM(dicts, d), &pos, &key, &value)) {
            Slot *s = slot_of(self, key, "indexed");
            Py_INCREF(value);
            self->values[s->row * k + d] = value;
        }
    }
    return 0;
}

/* how rare a byte is in English text, lower first: -1 for all but lower-case letters (rarer than any) */
static int
rarity(unsigned char c)
{
    static const char common[] = "zqxjkvbpygfwmucldrhsnioate"; /* rarest first */
    const char *p = c ? strchr(common, c) : NULL;
    return p == NULL ? -1 : (int)(p - common);
}

/* `probe` from the probes (a list of bytes). 0, or -1 on error */
static int
build_probes(Scanner *self, PyObject *list)
{
    self->probes = PyList_AsTuple(list);
    if (self->probes == NULL) {
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(self->probes);
    self->probe = PyMem_Calloc((size_t)n + 1, sizeof(Probe));
    self->probe_strs = PyTuple_New(n);
    if (self->probe == NULL || self->probe_strs == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = PyTuple_GET_ITEM(self->probes, i);
        if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) == 0) {
            PyErr_SetString(PyExc_TypeError, "probes must be non-empty bytes");
            return -1;
        }
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(b);
        Probe *pr = &self->probe[i];
        *pr = (Probe){(const char *)p, PyBytes_GET_SIZE(b), -1, 0};
        for (Py_ssize_t j = 0; j < pr->len; j++) {
            if (p[j] >= 128) {
                PyErr_SetString(PyExc_ValueError, "probes must be ASCII");
                return -1;
            }
            int letter = (p[j] | 0x20) >= 'a' && (p[j] | 0x20) <= 'z';
            if (pr->gate < 0 && !letter && p[j] != ' ') {
                pr->gate = p[j];
            }
            if (rarity(p[j]) < rarity(p[pr->at])) {
                pr->at = j;
            }
        }
        PyObject *str = PyUnicode_DecodeASCII(pr->data, pr->len, NULL);
        if (str == NULL) {
            return -1;
        }
        PyTuple_SET_ITEM(self->probe_strs, i, str);
        self->nprobes = i + 1; /* probe[i] complete */
    }
    return 0;
}

/* `asked`: its distinct bytes, ascending */
static void
build_asked(Scanner *self, const unsigned char *asked, Py_ssize_t n)
{
    unsigned char is_asked[256] = {0};
    for (Py_ssize_t i = 0; i < n; i++) {
        is_asked[asked[i]] = 1;
    }
    for (int c = 0; c < 256; c++) {
        if (is_asked[c]) {
            self->asked[self->nasked++] = (unsigned char)c;
        }
    }
}

static PyObject *
Scanner_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"words", "separators", "fallback", "glue", "counted", "indexed", "asked", "probes",
                             NULL};
    PyObject *words, *fallback, *counted = NULL, *indexed = NULL, *probes = NULL;
    Py_buffer seps, glue = {0}, asked = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oy*O|y*OOy*O", kwlist, &words, &seps, &fallback, &glue,
                                     &counted, &indexed, &asked, &probes)) {
        return NULL;
    }
    PyObject *list = NULL, *cats = NULL, *dicts = NULL, *probe_list = NULL;
    Scanner *self = NULL;
    if (fallback != Py_None && !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be callable or None");
        goto fail;
    }
    list = PySequence_List(words);
    cats = counted == NULL ? PyList_New(0) : PySequence_List(counted);
    dicts = indexed == NULL ? PyList_New(0) : PySequence_List(indexed);
    probe_list = probes == NULL ? PyList_New(0) : PySequence_List(probes);
    if (list == NULL || cats == NULL || dicts == NULL || probe_list == NULL) {
        goto fail;
    }
    for (Py_ssize_t c = 0; c < PyList_GET_SIZE(cats); c++) { /* each category as a list */
        PyObject *l = PySequence_List(PyList_GET_ITEM(cats, c));
        if (l == NULL) {
            goto fail;
        }
        PyList_SetItem(cats, c, l); /* steals l, drops the iterable (the caller holds it) */
    }
    self = (Scanner *)type->tp_alloc(type, 0);
    if (self == NULL) {
        goto fail;
    }
    for (int c = 0; c < 256; c++) {
        self->kind[c] = (c >= 'a' && c <= 'z') || c == ' ' ? 0 : MARK;
    }
    for (Py_ssize_t i = 0; i < seps.len; i++) {
        self->kind[((const unsigned char *)seps.buf)[i]] |= SEP;
    }
    for (Py_ssize_t i = 0; i < glue.len; i++) {
        self->kind[((const unsigned char *)glue.buf)[i]] |= GLUE;
    }
    build_asked(self, (const unsigned char *)asked.buf, asked.len);
    if (!(self->kind[' '] & self->kind['.'] & self->kind['\n'] & SEP)) { /* `scan` counts them among separators */
        PyErr_SetString(PyExc_ValueError, "separators must include \" \", \".\" and \"\\n\"");
        goto fail;
    }
    Py_INCREF(fallback);
    self->fallback = fallback;
    if (build_words(self, list) < 0 || build_counted(self, cats) < 0 || build_indexed(self, dicts) < 0
        || build_probes(self, probe_list) < 0) {
        goto fail;
    }
    Py_DECREF(list);
    Py_DECREF(cats);
    Py_DECREF(dicts);
    Py_DECREF(probe_list);
    PyBuffer_Release(&seps);
    PyBuffer_Release(&glue);
    PyBuffer_Release(&asked);
    return (PyObject *)self;
fail:
    Py_XDECREF(self);
    Py_XDECREF(list);
    Py_XDECREF(cats);
    Py_XDECREF(dicts);
    Py_XDECREF(probe_list);
    PyBuffer_Release(&seps);
    PyBuffer_Release(&glue);
    PyBuffer_Release(&asked);
    return NULL;
}

/* a new scan: no word seen, every category count 0 */
static void
start_scan(Scanner *self)
{
    self->scans++;
    memset(self->counts, 0, (size_t)self->ncounted * sizeof(Py_ssize_t));
}

/* A hit of this scan: 1 the first time (its categories counted, noted in `found` if it has values), else 0 */
static int
note(Scanner *self, Slot *s, Py_ssize_t *nfound)
{
    if (s->seen == self->scans) {
        return 0;
    }
    s->seen = self->scans;
    for (Py_ssize_t i = 0; i < s->ncat; i++) {
        self->counts[self->cats[s->cat0 + i]]++;
    }
    if (s->row >= 0) {
        self->found[(*nfound)++] = s - self->slots;
    }
    return 1;
}

/* Add the vocabulary's word equal to low[start:end] (hashed: h) to `hits`, if there is one and this scan
   has not added it yet (`note`). 0, or -1 on error. */
static int
hit(Scanner *self, PyObject *hits, const Py_UCS1 *low, Py_ssize_t start, Py_ssize_t end, uint64_t h,
    Py_ssize_t *nfound)
{
    Slot *s = lookup(self, (const char *)low + start, end - start, h);
    if (s == NULL || !note(self, s, nfound)) {
        return 0;
    }
    return PySet_Add(hits, s->word);
}

/* (a, b, c, ...) of n C integers, or NULL on error */
static PyObject *
tuple_of(PyObject *tuple, Py_ssize_t first, Py_ssize_t n, const Py_ssize_t *values)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromSsize_t(values[i]);
        if (v == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, first + i, v);
    }
    return tuple;
}

/* is a's word before b's in bytes order? */
static int
before(const Slot *a, const Slot *b)
{
    Py_ssize_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->data, b->data, (size_t)n);
    return c < 0 || (c == 0 && a->len < b->len);
}

/* `found`: per indexed dict, the values of this scan's hits (the nfound slots in self->found), in the bytes
   order of their words; or NULL on error */
static PyObject *
found_values(Scanner *self, Py_ssize_t nfound)
{
    Py_ssize_t *f = self->found;
    for (Py_ssize_t i = 1; i < nfound; i++) { /* insertion sort: a text has a few of them */
        Py_ssize_t x = f[i], j = i;
        for (; j > 0 && before(&self->slots[x], &self->slots[f[j - 1]]); j--) {
            f[j] = f[j - 1];
        }
        f[j] = x;
    }
    Py_ssize_t k = self->nindexed;
    PyObject *out = PyTuple_New(k);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t d = 0; d < k; d++) {
        Py_ssize_t n = 0;
        for (Py_ssize_t i = 0; i < nfound; i++) {
            n += self->values[self->slots[f[i]].row * k + d] != NULL;
        }
        PyObject *t = PyTuple_New(n);
        if (t == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        for (Py_ssize_t i = 0, m = 0; i < nfound; i++) {
            PyObject *v = self->values[self->slots[f[i]].row * k + d];
            if (v != NULL) {
                Py_INCREF(v);
                PyTuple_SET_ITEM(t, m++, v);
            }
        }
        PyTuple_SET_ITEM(out, d, t);
    }
    return out;
}

/* does s[:n] hold the probe? (memchr for its rarest byte, then a compare) */
static int
holds(const Py_UCS1 *s, Py_ssize_t n, const Probe *p)
{
    if (p->len > n) {
        return 0;
    }
    const Py_UCS1 *q = s + p->at, *last = s + (n - p->len) + p->at; /* where its rarest byte may sit */
    unsigned char c = (unsigned char)p->data[p->at];
    while (q <= last && (q = memchr(q, c, (size_t)(last - q) + 1)) != NULL) {
        if (memcmp(q - p->at, p->data, (size_t)p->len) == 0) {
            return 1;
        }
        q++;
    }
    return 0;
}

/* `probed` of an ASCII text s[:n]: 0, 1 or 2 (see the top); `marked`: the bytes among its marks */
static Py_ssize_t
probed(Scanner *self, const Py_UCS1 *s, Py_ssize_t n, const unsigned char *marked)
{
    Py_ssize_t found = 0;
    for (Py_ssize_t i = 0; i < self->nprobes && found < 2; i++) {
        const Probe *p = &self->probe[i];
        if ((p->gate < 0 || marked[p->gate]) && holds(s, n, p)) {
            found++;
        }
    }
    return found;
}

/* `probed` of any str (PyUnicode_Contains with each probe as a str), or -1 on error */
static Py_ssize_t
probed_str(Scanner *self, PyObject *text, const unsigned char *marked)
{
    Py_ssize_t found = 0;
    for (Py_ssize_t i = 0; i < self->nprobes && found < 2; i++) {
        const Probe *p = &self->probe[i];
        if (p->gate >= 0 && !marked[p->gate]) {
            continue;
        }
        int in = PyUnicode_Contains(text, PyTuple_GET_ITEM(self->probe_strs, i));
        if (in < 0) {
            return -1;
        }
        found += in;
    }
    return found;
}

/* (lowered, hits, marks, spaces, stops, plain, counts, found, present, probed): `base` the first six (borrowed),
   the rest from this scan's counts and found hits, `marked` (the bytes among the marks) and `probes` */
static PyObject *
result_of(Scanner *self, PyObject *const *base, Py_ssize_t nfound, const unsigned char *marked, Py_ssize_t probes)
{
    unsigned char present[256];
    Py_ssize_t np = 0;
    for (int i = 0; i < self->nasked; i++) {
        if (marked[self->asked[i]]) {
            present[np++] = self->asked[i];
        }
    }
    PyObject *result = PyTuple_New(10);
    if (result == NULL) {
        return NULL;
    }
    for (int i = 0; i < 6; i++) {
        Py_INCREF(base[i]);
        PyTuple_SET_ITEM(result, i, base[i]);
    }
    PyObject *items[4] = {PyTuple_New(self->ncounted), found_values(self, nfound),
                          PyBytes_FromStringAndSize((const char *)present, np), PyLong_FromSsize_t(probes)};
    for (int i = 0; i < 4; i++) {
        PyTuple_SET_ITEM(result, 6 + i, items[i]);
    }
    if (items[0] == NULL || items[1] == NULL || items[2] == NULL || items[3] == NULL) {
        Py_DECREF(result);
        return NULL;
    }
    if (tuple_of(items[0], 0, self->ncounted, self->counts) == NULL) {
        PyTuple_SET_ITEM(result, 6, NULL); /* tuple_of dropped it */
        Py_DECREF(result);
        return NULL;
    }
    return result;
}

/* the bytes of a marks buffer, as flags */
static void
mark_flags(unsigned char *marked, const char *marks, Py_ssize_t m)
{
    memset(marked, 0, 256);
    for (Py_ssize_t i = 0; i < m; i++) {
        marked[(unsigned char)marks[i]] = 1;
    }
}

/* `scan` of a text that is not ASCII: the first six from the fallback (the Python scan of the words), the rest
   counted here from its hits and marks as for an ASCII text */
static PyObject *
scan_other(Scanner *self, PyObject *text)
{
    if (self->fallback == Py_None) {
        Py_RETURN_NONE;
    }
    PyObject *base = PyObject_CallOneArg(self->fallback, text), *result = NULL;
    if (base == NULL) {
        return NULL;
    }
    if (!PyTuple_CheckExact(base) || PyTuple_GET_SIZE(base) != 6 || !PyAnySet_Check(PyTuple_GET_ITEM(base, 1))
        || !PyBytes_Check(PyTuple_GET_ITEM(base, 2))) {
        PyErr_SetString(PyExc_TypeError, "fallback must return (lowered, hits, marks, spaces, stops, plain)");
        goto done;
    }
    PyObject *it = PyObject_GetIter(PyTuple_GET_ITEM(base, 1)), *w;
    if (it == NULL) {
        goto done;
    }
    Py_ssize_t nfound = 0;
    start_scan(self);
    while ((w = PyIter_Next(it)) != NULL) {
        if (PyBytes_Check(w)) {
            const char *data = PyBytes_AS_STRING(w);
            Py_ssize_t len = PyBytes_GET_SIZE(w);
            Slot *s = lookup(self, data, len, fnv1a((const unsigned char *)data, len));
            if (s != NULL) {
                note(self, s, &nfound);
            }
        }
        Py_DECREF(w);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        goto done;
    }
    unsigned char marked[256];
    PyObject *marks = PyTuple_GET_ITEM(base, 2);
    mark_flags(marked, PyBytes_AS_STRING(marks), PyBytes_GET_SIZE(marks));
    Py_ssize_t probes = probed_str(self, text, marked);
    if (probes >= 0) {
        result = result_of(self, &PyTuple_GET_ITEM(base, 0), nfound, marked, probes);
    }
done:
    Py_DECREF(base);
    return result;
}

/* 1: `text` is an ASCII str, 0: a str of other characters, -1: not a str (TypeError naming `fn`) */
static int
ascii_str(PyObject *text, const char *fn)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "%s() expects a str", fn);
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) {
        return -1;
    }
#endif
    return PyUnicode_IS_ASCII(text) ? 1 : 0;
}

static PyObject *
Scanner_scan(Scanner *self, PyObject *text)
{
    int ascii = ascii_str(text, "scan");
    if (ascii < 0) {
        return NULL;
    }
    if (!ascii) {
        return scan_other(self, text);
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
    char stack[STACK_MARKS];
    char *marks = n <= STACK_MARKS ? stack : PyMem_Malloc((size_t)n);
    if (marks == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *lowered = NULL, *hits = NULL, *result = NULL;
    unsigned char marked[256]; /* the bytes among the marks */
    lowered = PyUnicode_New(n, 127);
    hits = PyFrozenSet_New(NULL);
    if (lowered == NULL || hits == NULL) {
        goto done;
    }
    Py_UCS1 *restrict low = PyUnicode_1BYTE_DATA(lowered);
    for (Py_ssize_t i = 0; i < n; i++) { /* lower-case (the compiler makes this a vector loop) */
        low[i] = s[i] + ((Py_UCS1)(s[i] - 'A') < 26u ? 'a' - 'A' : 0);
    }
    char *restrict out = marks;
    const unsigned char *restrict kind = self->kind;
    Py_ssize_t m = 0, spaces = 0, stops = 0, nfound = 0;
    unsigned glued = 0;
    start_scan(self);
    for (Py_ssize_t i = 0; i < n;) {
        /* a run of separators */
        for (; i < n && (kind[low[i]] & SEP); i++) {
            Py_UCS1 c = low[i];
            if (c == ' ') {
                spaces++;
                continue;
            }
            if (c == '.' && i + 1 < n && (low[i + 1] == ' ' || low[i + 1] == '\n')) {
                stops++;
            }
            if (kind[c] & MARK) {
                out[m++] = (char)c;
            }
        }
        /* then a word: hashed as it is walked, looked up once it ends */
        Py_ssize_t start = i;
        uint64_t h = FNV_OFFSET;
        for (; i < n; i++) {
            Py_UCS1 c = low[i];
            unsigned k = kind[c];
            if (k) { /* not a-z: a separator ends the word; a mark is kept, glue noted */
                if (k & SEP) {
                    break;
                }
                glued |= k;
                if (k & MARK) {
                    out[m++] = (char)c;
                }
            }
            h = (h ^ c) * FNV_PRIME;
        }
        if (i > start && hit(self, hits, low, start, i, h, &nfound) < 0) {
            goto done;
        }
    }
    mark_flags(marked, marks, m);
    PyObject *base[6] = {lowered, hits, PyBytes_FromStringAndSize(marks, m), PyLong_FromSsize_t(spaces),
                         PyLong_FromSsize_t(stops), (glued & GLUE) ? Py_False : Py_True};
    if (base[2] != NULL && base[3] != NULL && base[4] != NULL) {
        result = result_of(self, base, nfound, marked, probed(self, s, n, marked));
    }
    Py_XDECREF(base[2]);
    Py_XDECREF(base[3]);
    Py_XDECREF(base[4]);
done:
    if (marks != stack) {
        PyMem_Free(marks);
    }
    Py_XDECREF(lowered);
    Py_XDECREF(hits);
    return result;
}

/* spaces, newlines and digits of s[:n] into c[0..2]: 16 bytes a step with SSE2 (byte-wide counters summed every
   255 steps, before they can overflow), the rest one byte at a time */
static __attribute__((noinline)) void
count3(const Py_UCS1 *s, Py_ssize_t n, Py_ssize_t *c)
{
    Py_ssize_t i = 0, sp = 0, nl = 0, dg = 0;
#ifdef __SSE2__
    const __m128i space = _mm_set1_epi8(' '), newline = _mm_set1_epi8('\n'), zero = _mm_set1_epi8('0'),
                  nine = _mm_set1_epi8(9), none = _mm_setzero_si128();
    while (n - i >= 16) {
        __m128i a = none, b = none, d = none;
        Py_ssize_t steps = (n - i) / 16;
        if (steps > 255) {
            steps = 255;
        }
        for (Py_ssize_t k = 0; k < steps; k++, i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i x = _mm_sub_epi8(v, zero); /* a digit: x <= 9, unsigned */
            a = _mm_sub_epi8(a, _mm_cmpeq_epi8(v, space));
            b = _mm_sub_epi8(b, _mm_cmpeq_epi8(v, newline));
            d = _mm_sub_epi8(d, _mm_cmpeq_epi8(_mm_min_epu8(x, nine), x));
        }
        a = _mm_sad_epu8(a, none);
        b = _mm_sad_epu8(b, none);
        d = _mm_sad_epu8(d, none);
        sp += _mm_cvtsi128_si32(a) + _mm_extract_epi16(a, 4);
        nl += _mm_cvtsi128_si32(b) + _mm_extract_epi16(b, 4);
        dg += _mm_cvtsi128_si32(d) + _mm_extract_epi16(d, 4);
    }
#endif
    for (; i < n; i++) {
        Py_UCS1 x = s[i];
        sp += x == ' ';
        nl += x == '\n';
        dg += (Py_UCS1)(x - '0') < 10;
    }
    c[0] = sp;
    c[1] = nl;
    c[2] = dg;
}

static PyObject *
ascii_counts(PyObject *module, PyObject *text)
{
    int ascii = ascii_str(text, "ascii_counts");
    if (ascii <= 0) {
        if (ascii < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t counts[3]; /* spaces, newlines, digits */
    count3(s, n, counts);
    PyObject *result = PyTuple_New(3);
    return result == NULL ? NULL : tuple_of(result, 0, 3, counts);
}

/* bands(texts, params) -> (estimate, low, high) of ASCII texts of at most `max_chars` characters each, or None
   when a text is not ASCII or longer (the caller's general path). params: (per_char, per_space, per_newline,
   per_digit, low_factor, high_factor, high_slack, dense_est, dense_low, dense_high, max_chars). The same double
   operations in the same order as `textscan.bands_python` (the reference), so the same floats: products and sums
   one at a time (`fp-contract=off`: no fused multiply-add). */
__attribute__((optimize("fp-contract=off"))) static PyObject *
bands(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyTuple_Check(args[1]) || PyTuple_GET_SIZE(args[1]) != 11) {
        PyErr_SetString(PyExc_TypeError, "bands(texts: list, params: tuple of 11 numbers)");
        return NULL;
    }
    double k[11];
    for (int i = 0; i < 11; i++) {
        k[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(args[1], i));
        if (k[i] == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
    }
    PyObject *texts = args[0];
    double est = 0.0, low = 0.0, high = 0.0;
    for (Py_ssize_t t = 0; t < PyList_GET_SIZE(texts); t++) {
        PyObject *text = PyList_GET_ITEM(texts, t);
        int ascii = ascii_str(text, "bands");
        if (ascii < 0) {
            return NULL;
        }
        Py_ssize_t n = PyUnicode_GET_LENGTH(text);
        if (n == 0) {
            continue;
        }
        if (!ascii || (double)n > k[10]) {
            Py_RETURN_NONE;
        }
        Py_ssize_t c[3];
        count3(PyUnicode_1BYTE_DATA(text), n, c);
        Py_ssize_t sp = c[0], nl = c[1], dg = c[2];
        double e, lo, hi;
        if (sp * 12 >= n) {
            e = k[0] * (double)n;
            e = e + k[1] * (double)sp;
            e = e + k[2] * (double)nl;
            e = e + k[3] * (double)dg;
            lo = e * k[4];
            hi = e * k[5];
            hi = hi + k[6];
        }
        else {
            e = k[7] * (double)n;
            lo = k[8] * (double)n;
            hi = k[9] * (double)n;
            hi = hi + k[6];
        }
        est += e;
        low += lo > 1.0 ? lo : 1.0; /* a non-empty text is at least one token */
        high += hi;
    }
    PyObject *out = PyTuple_New(3);
    if (out == NULL) {
        return NULL;
    }
    double v[3] = {est, low, high};
    for (int i = 0; i < 3; i++) {
        PyObject *f = PyFloat_FromDouble(v[i]);
        if (f == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, f);
    }
    return out;
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_O,
     "scan(text) -> (lowered, hits, marks, spaces, stops, plain, counts, found, present, probed); see textscan.py"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "router.routing._textscan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Scanner(words, separators, fallback, glue=b'', counted=(), indexed=(), asked=b'', probes=()): "
              "a vocabulary's word table; scan(text) does one pass",
    .tp_methods = Scanner_methods,
    .tp_new = Scanner_new,
};

/* per byte: its lower case, and 1 unless it is whitespace `fold` drops (filled by the module's init) */
static unsigned char fold_lower[256], fold_keep[256];

static PyObject *
fold(PyObject *module, PyObject *text)
{
    int ascii = ascii_str(text, "fold");
    if (ascii <= 0) {
        if (ascii < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), m = 0;
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out == NULL) {
        return NULL;
    }
    char *o = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) { /* every byte is written; whitespace is overwritten by the next one */
        Py_UCS1 c = s[i];
        o[m] = (char)fold_lower[c];
        m += fold_keep[c];
    }
    if (m < n && _PyBytes_Resize(&out, m) < 0) {
        return NULL;
    }
    return out;
}

static PyMethodDef module_methods[] = {
    {"ascii_counts", (PyCFunction)ascii_counts, METH_O,
     "ascii_counts(text) -> (spaces, newlines, digits) of an ASCII text, None for any other"},
    {"bands", (PyCFunction)(void (*)(void))bands, METH_FASTCALL,
     "bands(texts, params) -> (estimate, low, high) token bands of short ASCII texts, None otherwise"},
    {"fold", (PyCFunction)fold, METH_O,
     "fold(text) -> an ASCII text's bytes lower-cased without ASCII whitespace, None for any other text"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_textscan", "The classifier's one pass over an ASCII text (see textscan.py).", -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__textscan(void)
{
    for (int c = 0; c < 256; c++) {
        fold_lower[c] = (unsigned char)(c >= 'A' && c <= 'Z' ? c + 'a' - 'A' : c);
        fold_keep[c] = !(c == ' ' || (c >= '\t' && c <= '\r')); /* \t \n \x0b \x0c \r */
    }
    if (PyType_Ready(&ScannerType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "API", TEXTSCAN_API) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
