/* _wire: the answer's status line and headers as bytes, as aiohttp's serializer makes them (optional C extension).
 *
 * aiohttp's `_serialize_headers` (Cython) walks every character through a UTF-8 writer with a bounds check per
 * byte: ~35 instructions a character, 30k for a routed answer's ~20 headers. Here an all-ASCII answer (every key
 * and value an exact `str`, or the `istr` type given to `setup`, flagged ASCII by CPython: O(1)) is checked for
 * control characters (below 0x20, and 0x7f) and copied with memcpy. Anything else (a non-ASCII or control
 * character, a tab, another type, an items view that does not give pairs) is handed, unchanged, to the
 * serializer given to `setup` (aiohttp's own), so the bytes, and the errors for a forbidden character or a value
 * that is not a string, are always aiohttp's. router/protocol.py installs it; tests/test_wire.py checks it
 * against aiohttp's C and Python serializers.
 *
 * setup(fallback, istr_type) -> None
 * serialize_headers(status_line, headers) -> bytes: status_line + "\r\n" + "K: V\r\n" per item + "\r\n".
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *fallback = NULL;  /* aiohttp's serializer */
static PyTypeObject *istr_type = NULL;  /* multidict's istr: a str subclass whose str() is its own text */

#define MAX_ITEMS 64  /* more headers than this: the fallback (an answer has ~20) */

/* The ASCII text of `o` without control characters, or NULL (no error set) when it is not that. */
static const char *
clean_ascii(PyObject *o, Py_ssize_t *len)
{
    if (Py_TYPE(o) != &PyUnicode_Type && Py_TYPE(o) != istr_type)
        return NULL;
#if PY_VERSION_HEX < 0x030C0000  /* (from 3.12 every str is ready, and the call is deprecated) */
    if (PyUnicode_READY(o) < 0) {
        PyErr_Clear();
        return NULL;
    }
#endif
    if (!PyUnicode_IS_ASCII(o))
        return NULL;
    const unsigned char *s = (const unsigned char *)PyUnicode_DATA(o);
    Py_ssize_t n = PyUnicode_GET_LENGTH(o);
    unsigned char bad = 0;
    for (Py_ssize_t i = 0; i < n; i++) {  /* ASCII: below 0x80; a control is below 0x20, or 0x7f */
        unsigned char c = s[i];
        bad |= (unsigned char)((c < 0x20) | (c == 0x7f));
    }
    if (bad)
        return NULL;
    *len = n;
    return (const char *)s;
}

static PyObject *
call_fallback(PyObject *status_line, PyObject *headers)
{
    if (fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_wire.setup was not called");
        return NULL;
    }
    return PyObject_CallFunctionObjArgs(fallback, status_line, headers, NULL);
}

static PyObject *
serialize_headers(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "serialize_headers(status_line, headers)");
        return NULL;
    }
    PyObject *status_line = args[0], *headers = args[1];
    const char *texts[2 * MAX_ITEMS + 1];
    Py_ssize_t lens[2 * MAX_ITEMS + 1];
    PyObject *pairs[MAX_ITEMS];
    Py_ssize_t npairs = 0, total = 0, k = 0;
    int simple = 1;

    texts[0] = clean_ascii(status_line, &lens[0]);
    if (texts[0] == NULL)
        return call_fallback(status_line, headers);
    total = lens[0] + 4;  /* its "\r\n" and the final "\r\n" */
    k = 1;
    PyObject *items = PyObject_CallMethod(headers, "items", NULL);
    if (items == NULL)
        return NULL;
    PyObject *it = PyObject_GetIter(items);
    Py_DECREF(items);
    if (it == NULL)
        return NULL;
    PyObject *pair;
    while ((pair = PyIter_Next(it)) != NULL) {
        if (npairs == MAX_ITEMS || !PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
            Py_DECREF(pair);
            simple = 0;
            break;
        }
        pairs[npairs++] = pair;  /* held until the copy: the texts point into its key and value */
        texts[k] = clean_ascii(PyTuple_GET_ITEM(pair, 0), &lens[k]);
        if (texts[k] == NULL) {
            simple = 0;
            break;
        }
        texts[k + 1] = clean_ascii(PyTuple_GET_ITEM(pair, 1), &lens[k + 1]);
        if (texts[k + 1] == NULL) {
            simple = 0;
            break;
        }
        total += lens[k] + lens[k + 1] + 4;  /* ": " and "\r\n" */
        k += 2;
    }
    Py_DECREF(it);
    PyObject *out = NULL;
    if (PyErr_Occurred())
        goto done;
    if (!simple) {
        out = call_fallback(status_line, headers);
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL)
        goto done;
    char *w = PyBytes_AS_STRING(out);
    memcpy(w, texts[0], lens[0]);
    w += lens[0];
    *w++ = '\r';
    *w++ = '\n';
    for (Py_ssize_t i = 1; i < k; i += 2) {
        memcpy(w, texts[i], lens[i]);
        w += lens[i];
        *w++ = ':';
        *w++ = ' ';
        memcpy(w, texts[i + 1], lens[i + 1]);
        w += lens[i + 1];
        *w++ = '\r';
        *w++ = '\n';
    }
    *w++ = '\r';
    *w++ = '\n';
done:
    for (Py_ssize_t i = 0; i < npairs; i++)
        Py_DECREF(pairs[i]);
    return out;
}

static PyObject *
setup(PyObject *self, PyObject *args)
{
    PyObject *fb, *istr;
    if (!PyArg_ParseTuple(args, "OO", &fb, &istr))
        return NULL;
    if (!PyCallable_Check(fb) || !PyType_Check(istr) || !PyType_IsSubtype((PyTypeObject *)istr, &PyUnicode_Type)) {
        PyErr_SetString(PyExc_TypeError, "setup(fallback: callable, istr_type: a str subclass)");
        return NULL;
    }
    Py_INCREF(fb);
    Py_XSETREF(fallback, fb);
    Py_INCREF(istr);
    Py_XSETREF(istr_type, (PyTypeObject *)istr);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"serialize_headers", (PyCFunction)(void (*)(void))serialize_headers, METH_FASTCALL,
     "serialize_headers(status_line, headers) -> bytes, as aiohttp's serializer gives them."},
    {"setup", setup, METH_VARARGS, "setup(fallback, istr_type): the serializer for anything not plain ASCII."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_wire", "The answer's head as bytes (see router/protocol.py).", -1, module_methods,
};

PyMODINIT_FUNC
PyInit__wire(void)
{
    return PyModule_Create(&module);
}
