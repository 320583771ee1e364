/* _textscan: the classifier's per-text character work in one pass over an ASCII text (optional C extension).
 *
 * `router/routing/textscan.py` is the reference: its pure-Python functions define every result, it imports
 * this module when it was compiled, and tests/test_textscan.py checks both give identical results. Only
 * ASCII text (one byte per character: CPython's `str.isascii()` flag, O(1)) is handled here; anything else
 * goes to the Python function passed as `fallback` (or gives None without one).
 *
 * Scanner(words, separators, fallback)
 *     words: iterable of bytes (the vocabulary; the scanner keeps a reference to each), separators: bytes
 *     (the bytes that split words), fallback: callable(text) for non-ASCII text, or None.
 * Scanner(words, separators, fallback, glue=b"")
 *     glue: bytes that are neither separators nor word characters (`plain` below)
 * Scanner.scan(text) -> (lowered, hits, marks, spaces, stops, plain)
 *     lowered  text.lower() (a new str)
 *     hits     frozenset of the vocabulary's own bytes objects that are words of `lowered` (maximal runs
 *              of non-separator bytes); no object is made per word: each span is hashed (FNV-1a) while
 *              walking and looked up in an open-addressing table built once from the vocabulary
 *     marks    bytes: `lowered`'s bytes but a-z and " " (its digits, punctuation, control characters)
 *     spaces   text.count(" ")
 *     stops    text.count(". ") + text.count(".\n")
 *     plain    True when no byte of `lowered` is in `glue` (then every word boundary is a separator)
 * ascii_counts(text) -> (spaces, newlines, digits) of an ASCII text, None for any other.
 *
 * Memory: every index is bounded by the text's length; the marks buffer is as long as the text (on the
 * stack up to STACK_MARKS bytes, else PyMem); the table holds one strong reference per distinct word and
 * drops them in dealloc. The type holds no reference back to itself, so it needs no GC support.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL
#define STACK_MARKS 2048
/* what Scanner() takes and scan() returns; textscan.py's API must equal it, else (an in-tree build older than
   the Python code, after a pull without a reinstall) textscan.py runs its Python functions instead */
#define TEXTSCAN_API 2

typedef struct {
    uint64_t hash;
    Py_ssize_t len;
    const char *data; /* the word's bytes (owned by `word`) */
    PyObject *word;   /* strong reference; NULL: an empty slot */
    uint64_t seen;    /* the scan that last added it to its hits (`Scanner.scans`): each word is added once */
} Slot;

/* per byte of a lower-cased ASCII text: SEP ends a word, MARK goes to `marks` (all but a-z and " ") */
enum { SEP = 1, MARK = 2, GLUE = 4 };

typedef struct {
    PyObject_HEAD
    Slot *slots;
    size_t mask;          /* slots - 1, a power of two minus one */
    Py_ssize_t max_len;   /* the longest word: longer spans are not looked up */
    PyObject *fallback;   /* strong reference: a callable or None */
    uint64_t scans;       /* scans so far (the GIL serialises them: nothing in a scan runs Python code) */
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
    Py_XDECREF(self->fallback);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Scanner_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"words", "separators", "fallback", "glue", NULL};
    PyObject *words, *fallback;
    Py_buffer seps, glue = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oy*O|y*", kwlist, &words, &seps, &fallback, &glue)) {
        return NULL;
    }
    if (fallback != Py_None && !PyCallable_Check(fallback)) {
        PyBuffer_Release(&seps);
        PyBuffer_Release(&glue);
        PyErr_SetString(PyExc_TypeError, "fallback must be callable or None");
        return NULL;
    }
    PyObject *list = PySequence_List(words);
    if (list == NULL) {
        PyBuffer_Release(&seps);
        PyBuffer_Release(&glue);
        return NULL;
    }
    Scanner *self = (Scanner *)type->tp_alloc(type, 0);
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
    if (!(self->kind[' '] & self->kind['.'] & self->kind['\n'] & SEP)) { /* `scan` counts them among separators */
        PyErr_SetString(PyExc_ValueError, "separators must include \" \", \".\" and \"\\n\"");
        goto fail;
    }
    Py_INCREF(fallback);
    self->fallback = fallback;
    Py_ssize_t n = PyList_GET_SIZE(list);
    size_t size = 8;
    while (size < (size_t)n * 2 + 1) {
        size <<= 1;
    }
    self->slots = PyMem_Calloc(size, sizeof(Slot));
    if (self->slots == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    self->mask = size - 1;
    self->max_len = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyList_GET_ITEM(list, i);
        if (!PyBytes_Check(w)) {
            PyErr_SetString(PyExc_TypeError, "words must be bytes");
            goto fail;
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
            self->slots[j] = (Slot){h, len, data, w, 0};
            if (len > self->max_len) {
                self->max_len = len;
            }
        }
    }
    Py_DECREF(list);
    PyBuffer_Release(&seps);
    PyBuffer_Release(&glue);
    return (PyObject *)self;
fail:
    Py_XDECREF(self);
    Py_DECREF(list);
    PyBuffer_Release(&seps);
    PyBuffer_Release(&glue);
    return NULL;
}

/* Add the vocabulary's word equal to low[start:end] (hashed: h) to `hits`, if there is one and this scan
   has not added it yet. 0, or -1 on error. */
static int
hit(Scanner *self, PyObject *hits, const Py_UCS1 *low, Py_ssize_t start, Py_ssize_t end, uint64_t h)
{
    Py_ssize_t len = end - start;
    if (len > self->max_len) {
        return 0;
    }
    size_t j = (size_t)h & self->mask;
    for (;;) {
        Slot *s = &self->slots[j];
        if (s->word == NULL) {
            return 0;
        }
        if (s->hash == h && s->len == len && memcmp(s->data, low + start, (size_t)len) == 0) {
            if (s->seen == self->scans) {
                return 0;
            }
            s->seen = self->scans;
            return PySet_Add(hits, s->word);
        }
        j = (j + 1) & self->mask;
    }
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
        if (self->fallback == Py_None) {
            Py_RETURN_NONE;
        }
        return PyObject_CallOneArg(self->fallback, text);
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
    char stack[STACK_MARKS];
    char *marks = n <= STACK_MARKS ? stack : PyMem_Malloc((size_t)n);
    if (marks == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *lowered = NULL, *hits = NULL, *marks_obj = NULL;
    lowered = PyUnicode_New(n, 127);
    hits = PyFrozenSet_New(NULL);
    if (lowered == NULL || hits == NULL) {
        goto fail;
    }
    Py_UCS1 *restrict low = PyUnicode_1BYTE_DATA(lowered);
    for (Py_ssize_t i = 0; i < n; i++) { /* lower-case (the compiler makes this a vector loop) */
        low[i] = s[i] + ((Py_UCS1)(s[i] - 'A') < 26u ? 'a' - 'A' : 0);
    }
    char *restrict out = marks;
    const unsigned char *restrict kind = self->kind;
    Py_ssize_t m = 0, spaces = 0, stops = 0;
    unsigned glued = 0;
    self->scans++;
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
            if (k & SEP) {
                break;
            }
            h = (h ^ c) * FNV_PRIME;
            glued |= k;
            if (k & MARK) {
                out[m++] = (char)c;
            }
        }
        if (i > start && hit(self, hits, low, start, i, h) < 0) {
            goto fail;
        }
    }
    marks_obj = PyBytes_FromStringAndSize(marks, m);
    PyObject *result = PyTuple_New(6);
    if (marks_obj == NULL || result == NULL) {
        Py_XDECREF(result);
        goto fail;
    }
    if (marks != stack) {
        PyMem_Free(marks);
    }
    PyTuple_SET_ITEM(result, 0, lowered);
    PyTuple_SET_ITEM(result, 1, hits);
    PyTuple_SET_ITEM(result, 2, marks_obj);
    PyObject *plain = (glued & GLUE) ? Py_False : Py_True;
    Py_INCREF(plain);
    PyTuple_SET_ITEM(result, 5, plain);
    Py_ssize_t ints[2] = {spaces, stops};
    return tuple_of(result, 3, 2, ints);
fail:
    if (marks != stack) {
        PyMem_Free(marks);
    }
    Py_XDECREF(lowered);
    Py_XDECREF(hits);
    Py_XDECREF(marks_obj);
    return NULL;
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
    Py_ssize_t counts[3] = {0, 0, 0}; /* spaces, newlines, digits */
    for (Py_ssize_t i = 0; i < n;) {
        /* byte-wide counters over chunks of at most 255 bytes (they cannot overflow): the compiler turns
           the inner loop into vector compares */
        Py_ssize_t end = n - i > 255 ? i + 255 : n;
        unsigned char sp = 0, nl = 0, dg = 0;
        for (; i < end; i++) {
            Py_UCS1 c = s[i];
            sp += c == ' ';
            nl += c == '\n';
            dg += (Py_UCS1)(c - '0') < 10;
        }
        counts[0] += sp;
        counts[1] += nl;
        counts[2] += dg;
    }
    PyObject *result = PyTuple_New(3);
    return result == NULL ? NULL : tuple_of(result, 0, 3, counts);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_O,
     "scan(text) -> (lowered, hits, marks, spaces, stops, plain); see router.routing.textscan"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "router.routing._textscan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Scanner(words, separators, fallback, glue=b''): a vocabulary's word table; scan(text) does one pass",
    .tp_methods = Scanner_methods,
    .tp_new = Scanner_new,
};

static PyMethodDef module_methods[] = {
    {"ascii_counts", (PyCFunction)ascii_counts, METH_O,
     "ascii_counts(text) -> (spaces, newlines, digits) of an ASCII text, None for any other"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_textscan", "The classifier's one pass over an ASCII text (see textscan.py).", -1,
    module_methods,
};

PyMODINIT_FUNC
PyInit__textscan(void)
{
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
