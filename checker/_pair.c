/* checker/_pair.c: the compiled twin of checker/history.py's pair, for a
 * history of plain event dicts.
 *
 * Owns pair_dicts(events, Op, inf) -> list[Op] | None: the operations pair()
 * builds, rule for rule (the same ids, fields, and the same Op for an
 * invoke left open or superseded), each made as pair() makes it
 * (tuple.__new__(Op, fields)). It answers None, and the caller runs pair(),
 * on anything pair() would raise on or that it does not read plainly: an
 * event that is not a dict, a missing field, a type that is not one of
 * the four strings, a completion with no open invoke that is not info, a
 * completion whose f differs, a process that is not a str or an int. So
 * pair() still names every bad line, and a compiled answer is always the
 * one pair() gives (tests/test_checker_native.py compares them).
 *
 * SOURCE_SHA256 is the SHA-256 of this file as setup.py saw it at build time:
 * checker/native.py uses the module only when it matches the file beside it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifndef SOURCE_SHA256
#define SOURCE_SHA256 ""
#endif

static PyObject *s_process, *s_type, *s_f, *s_key, *s_value, *s_time, *s_node, *s_error;
static PyObject *s_nemesis, *s_invoke, *s_ok, *s_fail, *s_info;

#define N_FIELDS 15

/* dict.get(name) as a new reference (None when absent), NULL on error */
static PyObject *get(PyObject *d, PyObject *name) {
    PyObject *v = PyDict_GetItemWithError(d, name);
    if (!v) {
        if (PyErr_Occurred())
            return NULL;
        v = Py_None;
    }
    Py_INCREF(v);
    return v;
}

/* tuple.__new__(Op, items): steals the references in items */
static PyObject *new_op(PyTypeObject *op_type, PyObject **items) {
    PyObject *o = op_type->tp_alloc(op_type, N_FIELDS);
    if (!o) {
        for (int x = 0; x < N_FIELDS; x++)
            Py_XDECREF(items[x]);
        return NULL;
    }
    for (int x = 0; x < N_FIELDS; x++)
        PyTuple_SET_ITEM(o, x, items[x]);
    return o;
}

/* pair's _unfinished: the op of invoke inv (call at position call) that
 * never completed */
static PyObject *unfinished(PyTypeObject *op_type, Py_ssize_t oid, PyObject *call, PyObject *inv,
                            PyObject *process, PyObject *inf) {
    PyObject *it[N_FIELDS];
    PyObject *v = get(inv, s_value);
    PyObject *f = get(inv, s_f);
    PyObject *key = get(inv, s_key);
    PyObject *t0 = get(inv, s_time);
    PyObject *id = PyLong_FromSsize_t(oid);
    if (!v || !f || !key || !t0 || !id) {
        Py_XDECREF(v); Py_XDECREF(f); Py_XDECREF(key); Py_XDECREF(t0); Py_XDECREF(id);
        return NULL;
    }
    it[0] = id;
    Py_INCREF(process); it[1] = process;
    it[2] = f;
    it[3] = key;
    it[4] = v;
    Py_INCREF(v); it[5] = v;
    Py_INCREF(s_info); it[6] = s_info;
    Py_INCREF(call); it[7] = call;
    Py_INCREF(inf); it[8] = inf;
    it[9] = t0;
    Py_INCREF(Py_None); it[10] = Py_None;
    Py_INCREF(Py_None); it[11] = Py_None;
    Py_INCREF(Py_None); it[12] = Py_None;
    Py_INCREF(inv); it[13] = inv;
    Py_INCREF(Py_None); it[14] = Py_None;
    return new_op(op_type, it);
}

/* 1 when p is the string "nemesis", 0 when not, -1 when p is neither a
 * str nor an int (not read plainly) */
static int is_nemesis(PyObject *p) {
    if (PyUnicode_CheckExact(p))
        return PyUnicode_Compare(p, s_nemesis) == 0;
    if (PyLong_CheckExact(p))
        return 0;
    return -1;
}

static PyObject *pair_dicts(PyObject *self, PyObject *args) {
    PyObject *events, *op_obj, *inf;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!OO", &PyList_Type, &events, &op_obj, &inf))
        return NULL;
    if (!PyType_Check(op_obj) || !PyType_IsSubtype((PyTypeObject *)op_obj, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "Op must be a tuple type");
        return NULL;
    }
    PyTypeObject *op_type = (PyTypeObject *)op_obj;
    PyObject *slots = PyList_New(0);     /* the invoke while open, its Op after */
    PyObject *calls = PyList_New(0);     /* position of each invoke (PyLong) */
    PyObject *open_ = PyDict_New();      /* process -> open op id (PyLong) */
    PyObject *result = NULL;
    if (!slots || !calls || !open_)
        goto error;
    Py_ssize_t n = PyList_GET_SIZE(events);
    for (Py_ssize_t pos = 0; pos < n; pos++) {
        PyObject *ev = PyList_GET_ITEM(events, pos);
        if (!PyDict_CheckExact(ev))
            goto decline;
        PyObject *p = PyDict_GetItemWithError(ev, s_process); /* borrowed */
        if (!p)
            goto decline_or_error;
        int nem = is_nemesis(p);
        if (nem < 0)
            goto decline;
        if (nem)
            continue;
        PyObject *t = PyDict_GetItemWithError(ev, s_type);
        if (!t)
            goto decline_or_error;
        if (!PyUnicode_CheckExact(t))
            goto decline;
        if (PyUnicode_Compare(t, s_invoke) == 0) {
            PyObject *prev = PyDict_GetItemWithError(open_, p);
            if (!prev && PyErr_Occurred())
                goto error;
            if (prev) {
                Py_ssize_t po = PyLong_AsSsize_t(prev);
                PyObject *op = unfinished(op_type, po, PyList_GET_ITEM(calls, po),
                                          PyList_GET_ITEM(slots, po), p, inf);
                if (!op)
                    goto error;
                PyList_SetItem(slots, po, op); /* steals op, drops the invoke */
            }
            PyObject *id = PyLong_FromSsize_t(PyList_GET_SIZE(slots));
            PyObject *pp = PyLong_FromSsize_t(pos);
            if (!id || !pp || PyDict_SetItem(open_, p, id) < 0 || PyList_Append(slots, ev) < 0 ||
                PyList_Append(calls, pp) < 0) {
                Py_XDECREF(id);
                Py_XDECREF(pp);
                goto error;
            }
            Py_DECREF(id);
            Py_DECREF(pp);
            continue;
        }
        int is_info = PyUnicode_Compare(t, s_info) == 0;
        if (!is_info && PyUnicode_Compare(t, s_ok) != 0 && PyUnicode_Compare(t, s_fail) != 0)
            goto decline;
        PyObject *oido = PyDict_GetItemWithError(open_, p);
        if (!oido) {
            if (PyErr_Occurred())
                goto error;
            if (is_info)
                continue; /* a client-side info note without invoke: no operation */
            goto decline;
        }
        Py_ssize_t oid = PyLong_AsSsize_t(oido);
        if (PyDict_DelItem(open_, p) < 0)
            goto error;
        PyObject *inv = PyList_GET_ITEM(slots, oid); /* borrowed: the open invoke */
        PyObject *it[N_FIELDS];
        for (int x = 0; x < N_FIELDS; x++)
            it[x] = NULL;
        PyObject *f = get(inv, s_f);
        PyObject *cf = get(ev, s_f);
        if (!f || !cf) {
            Py_XDECREF(f);
            Py_XDECREF(cf);
            goto error;
        }
        int differs = 0;
        if (cf != Py_None) {
            differs = PyObject_RichCompareBool(cf, f, Py_NE);
            if (differs < 0)
                PyErr_Clear();
        }
        Py_DECREF(cf);
        if (differs) {
            Py_DECREF(f);
            goto decline;
        }
        it[0] = PyLong_FromSsize_t(oid);
        Py_INCREF(p); it[1] = p;
        it[2] = f;
        it[3] = get(inv, s_key);
        it[4] = get(inv, s_value);
        if (is_info) {
            Py_XINCREF(it[4]);
            it[5] = it[4];
        } else {
            it[5] = get(ev, s_value);
        }
        Py_INCREF(t); it[6] = t;
        it[7] = PyList_GET_ITEM(calls, oid);
        Py_INCREF(it[7]);
        if (is_info) {
            Py_INCREF(inf);
            it[8] = inf;
        } else {
            it[8] = PyLong_FromSsize_t(pos);
        }
        it[9] = get(inv, s_time);
        it[10] = get(ev, s_time);
        it[11] = get(ev, s_node);
        it[12] = get(ev, s_error);
        Py_INCREF(inv); it[13] = inv;
        Py_INCREF(ev); it[14] = ev;
        int bad = 0;
        for (int x = 0; x < N_FIELDS; x++)
            bad |= it[x] == NULL;
        if (bad) {
            for (int x = 0; x < N_FIELDS; x++)
                Py_XDECREF(it[x]);
            goto error;
        }
        PyObject *op = new_op(op_type, it);
        if (!op)
            goto error;
        PyList_SetItem(slots, oid, op);
    }
    {
        Py_ssize_t at = 0;
        PyObject *p, *oido;
        while (PyDict_Next(open_, &at, &p, &oido)) {
            Py_ssize_t oid = PyLong_AsSsize_t(oido);
            PyObject *op = unfinished(op_type, oid, PyList_GET_ITEM(calls, oid),
                                      PyList_GET_ITEM(slots, oid), p, inf);
            if (!op)
                goto error;
            PyList_SetItem(slots, oid, op);
        }
    }
    result = slots;
    slots = NULL;
    goto done;
decline_or_error:
    if (PyErr_Occurred())
        goto error;
decline:
    Py_INCREF(Py_None);
    result = Py_None;
    goto done;
error:
    /* what pair() would raise on (an unhashable process, ...): its own words */
    PyErr_Clear();
    Py_INCREF(Py_None);
    result = Py_None;
done:
    Py_XDECREF(slots);
    Py_XDECREF(calls);
    Py_XDECREF(open_);
    return result;
}

static PyMethodDef methods[] = {
    {"pair_dicts", pair_dicts, METH_VARARGS,
     "pair_dicts(events, Op, inf) -> list[Op] | None: checker.history.pair's operations"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_pair", "The compiled twin of checker/history.py's pair.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pair(void) {
#define INTERN(var, text) if (!((var) = PyUnicode_InternFromString(text))) return NULL
    INTERN(s_process, "process"); INTERN(s_type, "type"); INTERN(s_f, "f");
    INTERN(s_key, "key"); INTERN(s_value, "value"); INTERN(s_time, "time");
    INTERN(s_node, "node"); INTERN(s_error, "error"); INTERN(s_nemesis, "nemesis");
    INTERN(s_invoke, "invoke"); INTERN(s_ok, "ok"); INTERN(s_fail, "fail");
    INTERN(s_info, "info");
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddStringConstant(m, "SOURCE_SHA256", SOURCE_SHA256) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
