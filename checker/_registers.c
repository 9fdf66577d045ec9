/* checker/_registers.c: the compiled twin of checker/registers.py's
 * _columns, the first pass of the register compile.
 *
 * Owns columns(ops, observed_fail, wildcard, init, hkey, cas_args) -> tuple
 * | None: what _columns returns for the same arguments, built the same way
 * (the same value codes in the same order, the same Python objects in each
 * column): (O, K, A, B, R, C, MB, values, init_c, deadline, opt, ocas_seen,
 * negative). Values that are not int, str, None or float are keyed by
 * calling hkey, and a cas value that is not a two-element list is split by
 * calling cas_args, as _columns does (so its ValueError for a bad value is
 * the same). It answers None, and the caller runs _columns, which names the
 * problem, for anything else: an op that is not an Op-sized tuple, an f or
 * type that is not a str, an f the model has no operation for, a call or
 * return that is not an int or float. tests/test_checker_native.py
 * compares the two.
 *
 * Also stale_observers(K, A, B, C, rets, init_c) -> list | None: what
 * _stale_observers returns on those columns (None, and the Python twin
 * runs, for columns that are not plain lists of ints and numbers).
 *
 * And needs(K, A, B, opt_rows, negative) -> (pred, needs) | None: what
 * _needs returns for a non-empty opt_rows in row order.
 *
 * SOURCE_SHA256 is the SHA-256 of this file as setup.py saw it at build time:
 * checker/native.py uses the module only when it matches the file beside it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>

#ifndef SOURCE_SHA256
#define SOURCE_SHA256 ""
#endif

static PyObject *s_read, *s_write, *s_cas, *s_ok, *s_fail;

enum { F_OP = 15, F_F = 2, F_VALUE = 4, F_OUTPUT = 5, F_TYPE = 6, F_CALL = 7, F_RET = 8 };

typedef struct {
    PyObject *codes, *values, *hkey;
} Coder;

/* registers.py's code(v): v's integer code, new codes in order of first use;
 * -1 on error */
static long code(Coder *c, PyObject *v) {
    PyObject *h;
    if (PyLong_CheckExact(v) || PyUnicode_CheckExact(v) || v == Py_None || PyFloat_CheckExact(v)) {
        h = v; /* hkey(v) is v itself */
        Py_INCREF(h);
    } else {
        h = PyObject_CallOneArg(c->hkey, v);
        if (!h)
            return -1;
    }
    PyObject *got = PyDict_GetItemWithError(c->codes, h);
    if (got) {
        Py_DECREF(h);
        return PyLong_AsLong(got);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(h);
        return -1;
    }
    long n = (long)PyList_GET_SIZE(c->values);
    PyObject *no = PyLong_FromLong(n);
    if (!no || PyDict_SetItem(c->codes, h, no) < 0 || PyList_Append(c->values, v) < 0) {
        Py_XDECREF(no);
        Py_DECREF(h);
        return -1;
    }
    Py_DECREF(no);
    Py_DECREF(h);
    return n;
}

/* a number as a double: 1, or 0 when not an int or float */
static int as_double(PyObject *o, double *out) {
    if (PyFloat_CheckExact(o)) {
        *out = PyFloat_AS_DOUBLE(o);
        return 1;
    }
    if (PyLong_CheckExact(o)) {
        *out = PyLong_AsDouble(o);
        if (*out == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        return 1;
    }
    return 0;
}

static int append_long(PyObject *list, long v) {
    PyObject *o = PyLong_FromLong(v);
    if (!o)
        return -1;
    int r = PyList_Append(list, o);
    Py_DECREF(o);
    return r;
}

/* deadline[c] = ret when ret is earlier than the one held (or none is) */
static int earlier(PyObject *deadline, long c, PyObject *ret, double r) {
    PyObject *key = PyLong_FromLong(c);
    if (!key)
        return -1;
    PyObject *d = PyDict_GetItemWithError(deadline, key);
    int rc = 0;
    double dv;
    if (!d && PyErr_Occurred())
        rc = -1;
    else if (!d || (as_double(d, &dv) && r < dv))
        rc = PyDict_SetItem(deadline, key, ret);
    Py_DECREF(key);
    return rc;
}

#define ROW(kind, a, b)                                                                     \
    do {                                                                                    \
        if (PyList_Append(O, op) < 0 || append_long(K, (kind)) < 0 ||                       \
            append_long(A, (a)) < 0 || append_long(B, (b)) < 0 || PyList_Append(R, ret) < 0 || \
            PyList_Append(C, call) < 0)                                                     \
            goto error;                                                                     \
    } while (0)

static PyObject *columns(PyObject *self, PyObject *args) {
    PyObject *ops, *init, *hkey, *cas_args;
    int observed_fail, wildcard;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!ppOOO", &PyList_Type, &ops, &observed_fail, &wildcard, &init,
                          &hkey, &cas_args))
        return NULL;
    PyObject *O = PyList_New(0), *K = PyList_New(0), *A = PyList_New(0), *B = PyList_New(0);
    PyObject *R = PyList_New(0), *C = PyList_New(0), *MB = PyList_New(0);
    PyObject *values = PyList_New(0), *codes = PyDict_New(), *deadline = PyDict_New();
    PyObject *opt = PyList_New(0), *ocas_seen = PyDict_New();
    PyObject *result = NULL, *exp = NULL, *new_ = NULL, *pairv = NULL;
    int negative = 0;
    if (!O || !K || !A || !B || !R || !C || !MB || !values || !codes || !deadline || !opt ||
        !ocas_seen)
        goto error;
    Coder cd = {codes, values, hkey};
    long init_c = code(&cd, init);
    if (init_c < 0)
        goto error;
    Py_ssize_t n = PyList_GET_SIZE(ops);
    for (Py_ssize_t x = 0; x < n; x++) {
        PyObject *op = PyList_GET_ITEM(ops, x);
        if (!PyTuple_Check(op) || PyTuple_GET_SIZE(op) != F_OP)
            goto decline;
        PyObject *f = PyTuple_GET_ITEM(op, F_F), *st = PyTuple_GET_ITEM(op, F_TYPE);
        PyObject *ret = PyTuple_GET_ITEM(op, F_RET), *call = PyTuple_GET_ITEM(op, F_CALL);
        double r, cl;
        if (!PyUnicode_CheckExact(f) || !PyUnicode_CheckExact(st) || !as_double(ret, &r) ||
            !as_double(call, &cl))
            goto decline;
        int is_ok = PyUnicode_Compare(st, s_ok) == 0;
        int is_fail = !is_ok && PyUnicode_Compare(st, s_fail) == 0;
        if (PyUnicode_Compare(f, s_read) == 0) {
            if (!is_ok)
                continue; /* an indeterminate or failed read changes nothing */
            PyObject *out = PyTuple_GET_ITEM(op, F_OUTPUT);
            if (out == Py_None && wildcard)
                continue;
            long c = code(&cd, out);
            if (c < 0)
                goto error;
            ROW(0, c, c);
            if (earlier(deadline, c, ret, r) < 0)
                goto error;
        } else if (PyUnicode_Compare(f, s_write) == 0) {
            if (is_fail)
                continue;
            long c = code(&cd, PyTuple_GET_ITEM(op, F_VALUE));
            if (c < 0)
                goto error;
            ROW(1, -1, c);
            if (append_long(MB, c) < 0)
                goto error;
            if (isinf(r) && r > 0 && append_long(opt, (long)PyList_GET_SIZE(O) - 1) < 0)
                goto error;
        } else if (PyUnicode_Compare(f, s_cas) == 0) {
            PyObject *v = PyTuple_GET_ITEM(op, F_VALUE);
            if (PyList_CheckExact(v) && PyList_GET_SIZE(v) == 2) {
                exp = PyList_GET_ITEM(v, 0);
                new_ = PyList_GET_ITEM(v, 1);
                Py_INCREF(exp);
                Py_INCREF(new_);
            } else {
                pairv = PyObject_CallOneArg(cas_args, op);
                if (!pairv)
                    goto error; /* its ValueError, as _columns raises it */
                if (!PyTuple_Check(pairv) || PyTuple_GET_SIZE(pairv) != 2) {
                    Py_CLEAR(pairv);
                    goto decline;
                }
                exp = PyTuple_GET_ITEM(pairv, 0);
                new_ = PyTuple_GET_ITEM(pairv, 1);
                Py_INCREF(exp);
                Py_INCREF(new_);
                Py_CLEAR(pairv);
            }
            if (is_fail) {
                if (observed_fail) {
                    long c = code(&cd, exp);
                    if (c < 0)
                        goto error;
                    ROW(3, c, c);
                    negative = 1;
                }
                Py_CLEAR(exp);
                Py_CLEAR(new_);
                continue;
            }
            long a = code(&cd, exp);
            if (a < 0)
                goto error;
            long b = code(&cd, new_);
            if (b < 0)
                goto error;
            Py_CLEAR(exp);
            Py_CLEAR(new_);
            if (isinf(r) && r > 0) {
                if (a == b)
                    continue; /* optional and cannot change the state: dropped */
                ROW(2, a, b);
                if (append_long(MB, b) < 0 ||
                    append_long(opt, (long)PyList_GET_SIZE(O) - 1) < 0)
                    goto error;
                PyObject *key = PyLong_FromLong(a);
                if (!key)
                    goto error;
                PyObject *had = PyDict_GetItemWithError(ocas_seen, key);
                long cnt = had ? PyLong_AsLong(had) : 0;
                PyObject *nc = (had || !PyErr_Occurred()) ? PyLong_FromLong(cnt + 1) : NULL;
                int bad = !nc || PyDict_SetItem(ocas_seen, key, nc) < 0;
                Py_XDECREF(nc);
                Py_DECREF(key);
                if (bad)
                    goto error;
                continue;
            }
            ROW(2, a, b);
            if (append_long(MB, b) < 0 || earlier(deadline, a, ret, r) < 0)
                goto error;
        } else {
            goto decline; /* no such operation: _columns raises */
        }
    }
    result = Py_BuildValue("OOOOOOOOlOOOO", O, K, A, B, R, C, MB, values, init_c, deadline, opt,
                           ocas_seen, negative ? Py_True : Py_False);
    goto done;
decline:
    Py_INCREF(Py_None);
    result = Py_None;
    goto done;
error:
    result = NULL;
done:
    Py_XDECREF(exp);
    Py_XDECREF(new_);
    Py_XDECREF(O); Py_XDECREF(K); Py_XDECREF(A); Py_XDECREF(B); Py_XDECREF(R); Py_XDECREF(C);
    Py_XDECREF(MB); Py_XDECREF(values); Py_XDECREF(codes); Py_XDECREF(deadline);
    Py_XDECREF(opt); Py_XDECREF(ocas_seen);
    return result;
}


/* ------------------------------------------------------------------ stale */

typedef struct {
    double call, ret;
} Mut;

static int cmp_mut(const void *a, const void *b) {
    const Mut *x = a, *y = b;
    if (x->call != y->call)
        return x->call < y->call ? -1 : 1;
    return (x->ret > y->ret) - (x->ret < y->ret);
}

/* a column of ints (0) or of numbers (1) into out; 0 when it is not one */
static int read_column(PyObject *list, Py_ssize_t n, int numbers, long *iv, double *dv) {
    if (!PyList_CheckExact(list) || PyList_GET_SIZE(list) != n)
        return 0;
    for (Py_ssize_t x = 0; x < n; x++) {
        PyObject *o = PyList_GET_ITEM(list, x);
        if (numbers) {
            if (!as_double(o, &dv[x]))
                return 0;
        } else {
            if (!PyLong_CheckExact(o))
                return 0;
            iv[x] = PyLong_AsLong(o);
            if (iv[x] == -1 && PyErr_Occurred()) {
                PyErr_Clear();
                return 0;
            }
        }
    }
    return 1;
}

/* registers.py's _stale_observers, on the same columns */
static PyObject *stale_observers(PyObject *self, PyObject *args) {
    PyObject *oK, *oA, *oB, *oC, *orets;
    long init_c;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOOl", &oK, &oA, &oB, &oC, &orets, &init_c))
        return NULL;
    Py_ssize_t n = PyObject_Length(oK);
    if (n < 0)
        return NULL;
    long *K = malloc(sizeof(long) * (n + 1)), *A = malloc(sizeof(long) * (n + 1));
    long *B = malloc(sizeof(long) * (n + 1));
    double *C = malloc(sizeof(double) * (n + 1)), *R = malloc(sizeof(double) * (n + 1));
    Mut *mut = malloc(sizeof(Mut) * (n + 1));
    double *suffix = malloc(sizeof(double) * (n + 2)), *last = NULL;
    char *has = NULL;
    PyObject *out = NULL;
    if (!K || !A || !B || !C || !R || !mut || !suffix) {
        PyErr_NoMemory();
        goto done;
    }
    if (!read_column(oK, n, 0, K, NULL) || !read_column(oA, n, 0, A, NULL) ||
        !read_column(oB, n, 0, B, NULL) || !read_column(oC, n, 1, NULL, C) ||
        !read_column(orets, n, 1, NULL, R)) {
        Py_INCREF(Py_None);
        out = Py_None; /* not plain columns: the Python twin */
        goto done;
    }
    long nv = init_c + 1;
    for (Py_ssize_t x = 0; x < n; x++) {
        if (K[x] < 0 || K[x] > 3 || A[x] < -1 || B[x] < -1 || init_c < 0) {
            Py_INCREF(Py_None);
            out = Py_None;
            goto done;
        }
        if (A[x] >= nv)
            nv = A[x] + 1;
        if (B[x] >= nv)
            nv = B[x] + 1;
    }
    last = malloc(sizeof(double) * (nv + 1));
    has = calloc((size_t)nv + 1, 1);
    if (!last || !has) {
        PyErr_NoMemory();
        goto done;
    }
    double inf = INFINITY;
    last[init_c] = -inf; /* the initial value: produced at -inf */
    has[init_c] = 1;
    Py_ssize_t nm = 0;
    int sorted_ = 1;
    for (Py_ssize_t x = 0; x < n; x++) {
        if (K[x] == 1 || K[x] == 2) {
            long b = B[x];
            double ret = R[x];
            if (b >= 0 && ret > (has[b] ? last[b] : -inf)) {
                last[b] = ret;
                has[b] = 1;
            }
            if (ret != inf) {
                if (nm && C[x] < mut[nm - 1].call)
                    sorted_ = 0;
                mut[nm].call = C[x];
                mut[nm].ret = ret;
                nm++;
            }
        }
    }
    out = PyList_New(0);
    if (!out || !nm)
        goto done;
    if (!sorted_)
        qsort(mut, (size_t)nm, sizeof *mut, cmp_mut);
    /* suffix minimum of completion over mutations ordered by invocation */
    double low = inf;
    suffix[nm] = inf;
    for (Py_ssize_t x = nm - 1; x >= 0; x--) {
        if (mut[x].ret < low)
            low = mut[x].ret;
        suffix[x] = low;
    }
    for (Py_ssize_t x = 0; x < n; x++) {
        if ((K[x] == 0 || K[x] == 2) && R[x] != inf) {
            long a = A[x];
            if (a < 0 || !has[a] || last[a] == inf)
                continue; /* never produced (the search explains it) or maybe later */
            double lp = last[a];
            Py_ssize_t lo = 0, hi = nm; /* bisect_right(mcalls, lp) */
            while (lo < hi) {
                Py_ssize_t mid = (lo + hi) / 2;
                if (lp < mut[mid].call)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            if (suffix[lo] < C[x]) {
                PyObject *o = PyLong_FromSsize_t(x);
                if (!o || PyList_Append(out, o) < 0) {
                    Py_XDECREF(o);
                    Py_CLEAR(out);
                    goto done;
                }
                Py_DECREF(o);
            }
        }
    }
done:
    free(K); free(A); free(B); free(C); free(R); free(mut); free(suffix); free(last); free(has);
    return out;
}


/* ------------------------------------------------------------------ needs */

typedef struct {
    long k, a, b, x;
} Sig;

static int cmp_sig(const void *p, const void *q) {
    const Sig *u = p, *v = q;
    if (u->k != v->k)
        return u->k < v->k ? -1 : 1;
    if (u->a != v->a)
        return u->a < v->a ? -1 : 1;
    if (u->b != v->b)
        return u->b < v->b ? -1 : 1;
    return (u->x > v->x) - (u->x < v->x);
}

static PyObject *long_list(const long *v, Py_ssize_t n) {
    PyObject *l = PyList_New(n);
    if (!l)
        return NULL;
    for (Py_ssize_t x = 0; x < n; x++) {
        PyObject *o = PyLong_FromLong(v[x]);
        if (!o) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, x, o);
    }
    return l;
}

/* registers.py's _needs, for a non-empty opt_rows in row order */
static PyObject *needs(PyObject *self, PyObject *args) {
    PyObject *oK, *oA, *oB, *oopt;
    int negative;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOOp", &oK, &oA, &oB, &oopt, &negative))
        return NULL;
    Py_ssize_t n = PyObject_Length(oK), m = PyObject_Length(oopt);
    if (n < 0 || m < 0)
        return NULL;
    long *K = malloc(sizeof(long) * (n + 1)), *A = malloc(sizeof(long) * (n + 1));
    long *B = malloc(sizeof(long) * (n + 1)), *opt = malloc(sizeof(long) * (m + 1));
    long *pred = malloc(sizeof(long) * (n + 1)), *neg = NULL, *start = NULL, *rows = NULL;
    long *lst = NULL, *fill = NULL;
    char *wanted = NULL;
    Sig *sig = malloc(sizeof(Sig) * (m + 1));
    PyObject *out = NULL, *needs_l = NULL, *pred_l = NULL;
    if (!K || !A || !B || !opt || !pred || !sig) {
        PyErr_NoMemory();
        goto done;
    }
    if (!read_column(oK, n, 0, K, NULL) || !read_column(oA, n, 0, A, NULL) ||
        !read_column(oB, n, 0, B, NULL) || !read_column(oopt, m, 0, opt, NULL))
        goto decline;
    long nv = 1;
    for (Py_ssize_t x = 0; x < n; x++) {
        if (A[x] < -1 || B[x] < -1)
            goto decline;
        if (A[x] >= nv)
            nv = A[x] + 1;
        if (B[x] >= nv)
            nv = B[x] + 1;
    }
    for (Py_ssize_t y = 0; y < m; y++)
        if (opt[y] < 0 || opt[y] >= n || (y && opt[y] <= opt[y - 1]) || B[opt[y]] < 0)
            goto decline;
    /* identical optional ops (same kind and coded values) in call order only */
    for (Py_ssize_t x = 0; x < n; x++)
        pred[x] = -1;
    for (Py_ssize_t y = 0; y < m; y++) {
        long x = opt[y];
        sig[y].k = K[x];
        sig[y].a = A[x];
        sig[y].b = B[x];
        sig[y].x = x;
    }
    qsort(sig, (size_t)m, sizeof *sig, cmp_sig);
    for (Py_ssize_t y = 1; y < m; y++)
        if (sig[y].k == sig[y - 1].k && sig[y].a == sig[y - 1].a && sig[y].b == sig[y - 1].b)
            pred[sig[y].x] = sig[y - 1].x;
    /* the rows seeing each wanted value (reads and cas from it), by value */
    wanted = calloc((size_t)nv + 1, 1);
    start = calloc((size_t)nv + 2, sizeof(long));
    fill = calloc((size_t)nv + 2, sizeof(long));
    if (!wanted || !start || !fill) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t y = 0; y < m; y++)
        wanted[B[opt[y]]] = 1;
    Py_ssize_t nneg = 0;
    for (Py_ssize_t x = 0; x < n; x++) {
        if (K[x] == 3)
            nneg++;
        else if (A[x] >= 0 && wanted[A[x]])
            start[A[x] + 1]++;
    }
    for (long v = 0; v < nv; v++)
        start[v + 1] += start[v];
    rows = malloc(sizeof(long) * ((size_t)start[nv] + 1));
    neg = malloc(sizeof(long) * ((size_t)nneg + 1));
    lst = malloc(sizeof(long) * ((size_t)start[nv] + (size_t)nneg + 1));
    if (!rows || !neg || !lst) {
        PyErr_NoMemory();
        goto done;
    }
    nneg = 0;
    for (Py_ssize_t x = 0; x < n; x++) {
        if (K[x] == 3)
            neg[nneg++] = (long)x;
        else if (A[x] >= 0 && wanted[A[x]])
            rows[start[A[x]] + fill[A[x]]++] = (long)x;
    }
    if (!negative)
        nneg = 0;
    pred_l = long_list(pred, n);
    needs_l = PyList_New(n);
    if (!pred_l || !needs_l)
        goto done;
    for (Py_ssize_t x = 0; x < n; x++) {
        Py_INCREF(Py_None);
        PyList_SET_ITEM(needs_l, x, Py_None);
    }
    for (Py_ssize_t y = 0; y < m; y++) {
        long x = opt[y], b = B[x];
        Py_ssize_t k = 0, s0 = start[b], s1 = start[b + 1], g = 0;
        /* seers of b other than x, merged in row order with the failed cas
         * rows from another value */
        while (s0 < s1 || g < nneg) {
            if (g < nneg && A[neg[g]] == b) {
                g++;
                continue;
            }
            if (s0 < s1 && rows[s0] == x) {
                s0++;
                continue;
            }
            if (g >= nneg || (s0 < s1 && rows[s0] < neg[g]))
                lst[k++] = rows[s0++];
            else
                lst[k++] = neg[g++];
        }
        PyObject *l = long_list(lst, k);
        if (!l)
            goto done;
        PyList_SetItem(needs_l, x, l);
    }
    out = PyTuple_Pack(2, pred_l, needs_l);
    goto done;
decline:
    Py_INCREF(Py_None);
    out = Py_None;
done:
    Py_XDECREF(pred_l);
    Py_XDECREF(needs_l);
    free(K); free(A); free(B); free(opt); free(pred); free(neg); free(start); free(rows);
    free(lst); free(fill); free(wanted); free(sig);
    return out;
}

static PyMethodDef methods[] = {
    {"columns", columns, METH_VARARGS,
     "columns(ops, observed_fail, wildcard, init, hkey, cas_args) -> tuple | None: "
     "checker.registers._columns"},
    {"stale_observers", stale_observers, METH_VARARGS,
     "stale_observers(K, A, B, C, rets, init_c) -> list[int] | None: "
     "checker.registers._stale_observers"},
    {"needs", needs, METH_VARARGS,
     "needs(K, A, B, opt_rows, negative) -> (pred, needs) | None: checker.registers._needs"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_registers", "The compiled twin of checker/registers.py's _columns.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__registers(void) {
#define INTERN(var, text) if (!((var) = PyUnicode_InternFromString(text))) return NULL
    INTERN(s_read, "read"); INTERN(s_write, "write"); INTERN(s_cas, "cas");
    INTERN(s_ok, "ok"); INTERN(s_fail, "fail");
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddStringConstant(m, "SOURCE_SHA256", SOURCE_SHA256) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
