/* checker/_edn_json.c: one pass from EDN text to JSON text, for checker/edn.py.
 *
 * Owns translate(data, start, end) -> bytes | None: the top-level forms of
 * data[start:end] as one JSON array, which orjson then parses into the
 * checker's events. It is the compiled twin of edn.py's translation and keeps
 * its invariant: it never reads a different value from the tokenizer
 * (edn._read_forms). It answers the same forms or None, and None sends the
 * run to the tokenizer. It translates only what it can translate exactly:
 *
 *   - maps whose keys are keywords or strings ({:a 1} -> {"a":1}), vectors,
 *     lists and sets (-> arrays); tags such as #jepsen.history.Op are
 *     dropped, as the tokenizer ignores them; ';' comments are skipped;
 *   - keywords (:read -> "read"), nil -> null, true, false;
 *   - numbers in the grammar that JSON and the tokenizer read alike
 *     (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?) with no run of 19 or
 *     more digits (past 64 bits orjson reads an integer as a float);
 *   - strings copied as they are (orjson decodes their escapes as
 *     json.loads does, and rejects what json.loads rejects: the tokenizer
 *     then reads the run), without control characters.
 *
 * None for anything else: symbols (null among them), 1N, 1M, +1, 1/2, \c,
 * #_, odd maps, other keys, bytes past ASCII outside strings (Python's \s
 * holds Unicode spaces), control characters, a newline inside a form, two
 * forms on one line, a run that ends inside a form or after a tag.
 *
 * SOURCE_SHA256 is the SHA-256 of this file as setup.py saw it at build time:
 * edn.py uses the module only when it matches the file beside it, so a stale
 * build never shadows an edited source.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#ifndef SOURCE_SHA256
#define SOURCE_SHA256 ""
#endif

#define MAX_DEPTH 64

enum { K_MAP, K_SEQ };

/* 1: ends an atom (the tokenizer's [\s,\[\](){}";] restricted to ASCII);
 * 2: a byte that makes the run fall back (control characters, non-ASCII). */
static unsigned char delim[256];

static void init_tables(void) {
    int i;
    for (i = 0; i < 256; i++)
        delim[i] = (i < 0x20 || i >= 0x80) ? 2 : 0;
    delim[' '] = delim['\t'] = delim['\n'] = delim['\r'] = 1;
    delim[','] = delim['['] = delim[']'] = delim['('] = delim[')'] = 1;
    delim['{'] = delim['}'] = delim['"'] = delim[';'] = 1;
}

/* A JSON number the tokenizer reads as the same int or float. */
static int is_number(const unsigned char *p, Py_ssize_t n) {
    Py_ssize_t i = 0, run = 0;
    if (i < n && p[i] == '-')
        i++;
    if (i >= n || p[i] < '0' || p[i] > '9')
        return 0;
    if (p[i] == '0' && i + 1 < n && p[i + 1] >= '0' && p[i + 1] <= '9')
        return 0; /* 007: JSON rejects it, the tokenizer reads 7 */
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        i++;
        run++;
    }
    if (run >= 19)
        return 0;
    if (i < n && p[i] == '.') {
        i++;
        run = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            i++;
            run++;
        }
        if (run == 0 || run >= 19)
            return 0; /* 1. : JSON rejects it */
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        run = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            i++;
            run++;
        }
        if (run == 0 || run > 3)
            return 0; /* 1e400: orjson refuses infinity, the tokenizer reads inf */
    }
    return i == n;
}

static PyObject *translate(PyObject *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t start, end;
    if (!PyArg_ParseTuple(args, "y*nn", &buf, &start, &end))
        return NULL;
    if (start < 0 || end > buf.len || start > end) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "start/end outside the data");
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)buf.buf;
    Py_ssize_t cap = 3 * (end - start) + 16;
    PyObject *res = PyBytes_FromStringAndSize(NULL, cap);
    if (res == NULL) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(res);
    unsigned char *o0 = o;

    unsigned char kind[MAX_DEPTH];   /* K_MAP or K_SEQ */
    unsigned char closer[MAX_DEPTH]; /* the EDN closer expected */
    unsigned char want_val[MAX_DEPTH]; /* map: the next form is a value */
    Py_ssize_t items[MAX_DEPTH];     /* forms so far (a map: keys and values) */
    int depth = 0;
    int tag = 0;             /* a tag waits for its form */
    int form_on_line = 0;    /* a top-level form started on this line */
    Py_ssize_t forms = 0;
    Py_ssize_t i = start;

    *o++ = '[';
    while (i < end) {
        unsigned char c = s[i];
        /* whitespace and comments */
        if (c == ' ' || c == ',' || c == '\r' || c == '\t') {
            i++;
            continue;
        }
        if (c == '\n') {
            if (depth || tag)
                goto fallback;
            form_on_line = 0;
            i++;
            continue;
        }
        if (c == ';') {
            while (i < end && s[i] != '\n')
                i++;
            continue;
        }
        /* closers */
        if (c == '}' || c == ']' || c == ')') {
            if (!depth || closer[depth - 1] != c || tag)
                goto fallback;
            depth--;
            if (kind[depth] == K_MAP && want_val[depth])
                goto fallback; /* an odd map */
            *o++ = (kind[depth] == K_MAP) ? '}' : ']';
            i++;
            continue;
        }

        if (c == '#' && !(i + 1 < end && s[i + 1] == '{')) {
            /* a tag: #[A-Za-z][\w.\-/]*, dropped (not a form: its form follows) */
            unsigned char t = (i + 1 < end) ? s[i + 1] : 0;
            if (!((t >= 'A' && t <= 'Z') || (t >= 'a' && t <= 'z')))
                goto fallback; /* #_, ##Inf, #"re", #:ns{...} */
            i += 2;
            while (i < end) {
                t = s[i];
                if ((t >= 'A' && t <= 'Z') || (t >= 'a' && t <= 'z') || (t >= '0' && t <= '9') ||
                    t == '_' || t == '.' || t == '-' || t == '/')
                    i++;
                else
                    break;
            }
            if (i < end && s[i] >= 0x80)
                goto fallback; /* \w reads Unicode letters on */
            tag = 1;
            continue;
        }

        /* a form starts: what goes before it, where it sits */
        int is_key = 0;
        if (depth) {
            int d = depth - 1;
            if (kind[d] == K_MAP) {
                if (!want_val[d]) {
                    is_key = 1;
                    if (items[d])
                        *o++ = ',';
                } else {
                    *o++ = ':';
                }
                want_val[d] = !want_val[d];
            } else if (items[d]) {
                *o++ = ',';
            }
            items[d]++;
        } else {
            if (form_on_line)
                goto fallback;
            form_on_line = 1;
            if (forms)
                *o++ = ',';
            forms++;
        }
        tag = 0;

        if (c == '{' || c == '[' || c == '(' || c == '#') { /* '#': "#{", a set */
            if (is_key || depth >= MAX_DEPTH)
                goto fallback;
            kind[depth] = (c == '{') ? K_MAP : K_SEQ;
            closer[depth] = (c == '[') ? ']' : (c == '(') ? ')' : '}';
            want_val[depth] = 0;
            items[depth] = 0;
            depth++;
            *o++ = (c == '{') ? '{' : '[';
            i += (c == '#') ? 2 : 1;
            continue;
        }
        if (c == '"') {
            *o++ = '"';
            i++;
            while (1) {
                if (i >= end)
                    goto fallback;
                unsigned char b = s[i];
                if (b == '"')
                    break;
                if (b < 0x20)
                    goto fallback;
                if (b == '\\') {
                    if (i + 1 >= end || s[i + 1] < 0x20)
                        goto fallback;
                    *o++ = b;
                    i++;
                    b = s[i];
                }
                *o++ = b;
                i++;
            }
            *o++ = '"';
            i++;
            continue;
        }
        if (c == '\\')
            goto fallback; /* a character literal */
        if (delim[c] == 2)
            goto fallback;
        /* an atom: up to the next delimiter */
        Py_ssize_t a = i;
        while (i < end && !delim[s[i]])
            i++;
        if (i < end && delim[s[i]] == 2)
            goto fallback;
        Py_ssize_t n = i - a;
        const unsigned char *p = s + a;
        if (p[0] == ':') { /* a keyword: its name as a string */
            Py_ssize_t k;
            for (k = 1; k < n; k++)
                if (p[k] == '\\')
                    goto fallback;
            *o++ = '"';
            memcpy(o, p + 1, n - 1);
            o += n - 1;
            *o++ = '"';
            continue;
        }
        if (is_key)
            goto fallback; /* a key JSON cannot have (a number, nil, ...) */
        if (n == 3 && memcmp(p, "nil", 3) == 0) {
            memcpy(o, "null", 4);
            o += 4;
        } else if ((n == 4 && memcmp(p, "true", 4) == 0) ||
                   (n == 5 && memcmp(p, "false", 5) == 0) || is_number(p, n)) {
            memcpy(o, p, n);
            o += n;
        } else {
            goto fallback; /* a symbol, or a number only EDN reads */
        }
    }
    if (depth || tag)
        goto fallback;
    *o++ = ']';
    PyBuffer_Release(&buf);
    if (_PyBytes_Resize(&res, o - o0) < 0)
        return NULL;
    return res;

fallback:
    PyBuffer_Release(&buf);
    Py_DECREF(res);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"translate", translate, METH_VARARGS,
     "translate(data, start, end) -> bytes | None: the top-level EDN forms of "
     "data[start:end] as one JSON array, or None where the tokenizer must read."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_edn_json",
    "EDN to JSON in one pass (see checker/_edn_json.c's header).", -1, methods,
};

PyMODINIT_FUNC PyInit__edn_json(void) {
    init_tables();
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "SOURCE_SHA256", SOURCE_SHA256) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
