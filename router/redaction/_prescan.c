/* _prescan: "nothing to redact anywhere" for a small JSON request body in one C pass (optional C extension).
 *
 * clean(raw: bytes) -> bool
 *     True when no string value of the JSON document `raw` can hold a finding of any detector of
 *     `router/redaction/detectors.py`; False means "not decided here" (the caller's pass over the same
 *     bytes, then the body walk, decide). It decides only ASCII bytes without a backslash: there every
 *     string's text is the very bytes between its quotes and every quote opens or closes a string.
 *
 * A string is a key when its closing quote is followed (after JSON whitespace) by a colon: keys are never
 * scanned, so their bytes count for nothing. A value string is passed when none of these, each implied by
 * every finding of some detectors (their patterns, and for PHONE its check), occurs in it:
 *     a byte @ : = _ ~ /       (EMAIL, URL passwords, assignments, IPv6, Slack hooks, GitHub/Stripe, Azure,
 *                               CNPJ formatted, Google 1//0)
 *     "eyJ", "-----"           (JWT, private keys)
 *     "bearer", "basic"        (any case: the generic TOKEN and PASSWORD)
 *     digit . digit            (IPv4, CPF)
 *     A-Z A-Z digit digit      (IBAN)
 *     14 bytes of [A-Za-z0-9_-] in a row   (every provider key, CNPJ without format, AWS, Twilio)
 *     9 digits in a row        (CARD's \d{9,}: cards, CPF, CNPJ, SSN, phones without separators)
 *     in one run of [0-9 .()+-] (a number-shaped run: every digit detector's match lies in one), 12 digits
 *     (CARD's pattern), or 8 (PHONE's check) with two of [ .-] each between digits (SSN and PHONE's
 *     national forms), a group of digits starting with 0 or 9 (PHONE's 0... and 9dddd-dddd) or a digit
 *     after + or ( (PHONE's international and area-code forms)
 * tests/test_redaction.py holds the list to the detectors: a body this calls clean has no finding (corpus,
 * random bodies around every threshold), and the body redacts the same with and without it.
 *
 * Cost: memchr for a backslash and for the quotes; inside a value string one table lookup per lower-case
 * letter (most of prose), a few more for the rest. No allocation, no reference kept.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

enum {
    C_T = 1,       /* [A-Za-z0-9_-]: a key-shaped run */
    C_N = 2,       /* [0-9 .()+-]: a number-shaped run */
    C_DIGIT = 4,
    C_FLAG = 8,    /* @ : = _ ~ / */
    C_CHECK = 16,  /* J b B -: a literal may start or end here */
    C_UPPER = 32,
    C_BAD = 64,    /* a backslash or a byte beyond ASCII: not decided here */
};
#define K_PLAIN C_T  /* a lower-case letter but b: nothing to do beyond the run */

#define MAX_KEY_RUN 14  /* CNPJ without format: 14; every provider key is longer */
#define MAX_ROW 9       /* digits in a row: the CARD detector's \\d{9,} */
#define MAX_DIGITS 12   /* digits in a number-shaped run: CARD's pattern has 12 at least */
#define PHONE_DIGITS 8  /* PHONE's check wants 8 */

static unsigned char cls[256];

static void init_tables(void) {
    for (int c = 0; c < 256; c++) {
        unsigned char k = 0;
        int lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z', digit = c >= '0' && c <= '9';
        if (c >= 128 || c == '\\') k |= C_BAD;
        if (lower || upper || digit || c == '_' || c == '-') k |= C_T;
        if (digit || c == ' ' || c == '.' || c == '(' || c == ')' || c == '+' || c == '-') k |= C_N;
        if (digit) k |= C_DIGIT;
        if (upper) k |= C_UPPER;
        if (c == '@' || c == ':' || c == '=' || c == '_' || c == '~' || c == '/') k |= C_FLAG;
        if (c == 'J' || c == 'b' || c == 'B' || c == '-') k |= C_CHECK;
        cls[c] = k;
    }
}

static int lower_is(const unsigned char *p, const char *word, Py_ssize_t len) {
    for (Py_ssize_t j = 0; j < len; j++) {
        if ((p[j] | 0x20) != (unsigned char)word[j]) return 0;
    }
    return 1;
}

/* 1: the value string p[start:end] may hold a finding; 0: it cannot. */
static int value_may(const unsigned char *p, Py_ssize_t start, Py_ssize_t end) {
    Py_ssize_t run_start = start;  /* the key-shaped run in progress */
    int broken = 1, digits = 0, seps = 0, marked = 0, row = 0;  /* the number-shaped run in progress */
    Py_ssize_t i = start;
    for (;; i++) {
        /* The common bytes first. Letters end a number-shaped run and go on with the key-shaped one (p[end]
         * is the closing quote, not K_PLAIN: the loop stops there at the latest); a space does the reverse. */
        if (cls[p[i]] == K_PLAIN) {
            do i++; while (cls[p[i]] == K_PLAIN);
            broken = 1;
        }
        unsigned char c = p[i], k = cls[c];
        if (c == ' ') {
            if (i - run_start >= MAX_KEY_RUN) return 1;
            run_start = i + 1;
            continue;
        }
        if (i >= end) break;
        if (k & (C_FLAG | C_BAD)) return 1;
        if (!(k & C_T)) {
            if (i - run_start >= MAX_KEY_RUN) return 1;
            run_start = i + 1;
        }
        if (k & C_DIGIT) {
            if (broken) {
                digits = seps = marked = 0;
                broken = 0;
            }
            digits++;
            unsigned char a = i > start ? p[i - 1] : 0;
            if (cls[a] & C_DIGIT) {
                if (++row >= MAX_ROW) return 1;
                if (i - 3 >= start && (cls[p[i - 2]] & C_UPPER) && (cls[p[i - 3]] & C_UPPER)) return 1;
            } else {
                row = 1;
                if (c == '0' || c == '9' || a == '+' || a == '(') marked = 1;
                if ((a == ' ' || a == '.' || a == '-') && i - 2 >= start && (cls[p[i - 2]] & C_DIGIT)) {
                    if (a == '.') return 1;
                    seps++;
                }
            }
            if (digits >= MAX_DIGITS || (digits >= PHONE_DIGITS && (seps >= 2 || marked))) return 1;
        } else if (!(k & C_N)) {
            broken = 1;
        }
        if (k & C_CHECK) {
            if (c == 'J') {
                if (i - 2 >= start && p[i - 1] == 'y' && p[i - 2] == 'e') return 1;
            } else if (c == '-') {
                if (i + 4 < end && memcmp(p + i + 1, "----", 4) == 0) return 1;
            } else {  /* b, B */
                if (i + 5 < end && lower_is(p + i + 1, "earer", 5)) return 1;
                if (i + 4 < end && lower_is(p + i + 1, "asic", 4)) return 1;
            }
        }
    }
    return i - run_start >= MAX_KEY_RUN;
}

static PyObject *clean(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "clean() expects bytes");
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg), i = 0;
    if (memchr(p, '\\', (size_t)n) != NULL) Py_RETURN_FALSE;  /* an escape: a quote may not end a string */
    while (i < n) {
        const unsigned char *q = memchr(p + i, '"', (size_t)(n - i));  /* between strings: structure */
        if (q == NULL) break;
        Py_ssize_t start = q - p + 1;
        const unsigned char *e = memchr(p + start, '"', (size_t)(n - start));
        if (e == NULL) Py_RETURN_FALSE;  /* an unclosed string: not JSON */
        Py_ssize_t end = e - p, j = end + 1;
        while (j < n && (p[j] == ' ' || p[j] == '\t' || p[j] == '\n' || p[j] == '\r')) j++;
        if (!(j < n && p[j] == ':') && value_may(p, start, end)) Py_RETURN_FALSE;
        i = end + 1;
    }
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"clean", (PyCFunction)clean, METH_O,
     "clean(raw: bytes) -> bool: True when no string value of the JSON document can hold a finding."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_prescan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__prescan(void) {
    init_tables();
    return PyModule_Create(&module);
}
