/* checker/_search.c: the compiled twin of checker/search.py's linearize, for
 * a partition whose step is a table (checker/search.py "Table step").
 *
 * Owns linearize_table(calls, rets, kinds, seen, writes, init, pred, needs,
 * deadline, max_held) -> tuple | None. It is search.py's loop transcribed
 * line for line (the same candidates in the same order, the same memo test,
 * the same step count, prefix, window and held count), with the model's
 * step replaced by the table: for op i in integer state s,
 *
 *   kinds[i] == 1: s -> writes[i]                    (a write)
 *   kinds[i] == 3: s -> s if s != seen[i], else NO   (a failed cas, observed)
 *   otherwise:     s -> writes[i] if s == seen[i], else NO   (read, cas)
 *
 * The definite set is kept as search.py keeps it, (base, rel), with rel in W
 * 64-bit words and the optional set in V words. It answers None, and the
 * caller runs the Python search from the start, when a partition does not
 * fit those widths (more than 512 optional ops, or a linearized op 512 or
 * more ranks above base) or an argument is not what it expects (a state
 * that is not a 64-bit int, an unknown kind). So the verdict never depends
 * on which of the two ran; tests/test_checker_native.py holds them equal.
 *
 * Memory: one memo entry (an optional set, plus its definite set and state
 * the first time) takes at most 8 * (W + V + 5) + 16 bytes, under the 200
 * bytes checker/check.py's memory cap assumes per entry.
 *
 * SOURCE_SHA256 is the SHA-256 of this file as setup.py saw it at build time:
 * checker/native.py uses the module only when it matches the file beside it,
 * so a stale build never shadows an edited source.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef SOURCE_SHA256
#define SOURCE_SHA256 ""
#endif

#define WMAX 8 /* words of rel: 512 ranks above base */
#define VMAX 8 /* words of the optional set: 512 optional ops */
#define CHECK_EVERY 4096

typedef int64_t i64;
typedef uint64_t u64;

/* ------------------------------------------------------------------ memo */

/* Keys (base, state, rel) with the chain of optional sets seen with them.
 * keys: stride 4 + W words: hash, base, state, head (ols index or -1), rel.
 * ols: stride 1 + V words: next (index or -1), set. */
typedef struct {
    int W, V;
    u64 *keys;
    size_t nkeys, kcap;
    u64 *ols;
    size_t nols, ocap;
    i64 *table;
    size_t tmask;
} Memo;

static u64 hash_key(i64 base, i64 state, const u64 *rel, int W) {
    u64 h = 0x243f6a8885a308d3ULL ^ (u64)base;
    h = (h ^ (u64)state) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
    for (int w = 0; w < W; w++) {
        h = (h ^ rel[w]) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    return h ^ (h >> 32);
}

static int memo_init(Memo *mm, int W, int V) {
    mm->W = W;
    mm->V = V;
    mm->nkeys = mm->nols = 0;
    mm->kcap = mm->ocap = 64;
    mm->keys = malloc(sizeof(u64) * (4 + W) * mm->kcap);
    mm->ols = malloc(sizeof(u64) * (1 + V) * mm->ocap);
    mm->tmask = 127;
    mm->table = malloc(sizeof(i64) * (mm->tmask + 1));
    if (!mm->keys || !mm->ols || !mm->table)
        return -1;
    for (size_t x = 0; x <= mm->tmask; x++)
        mm->table[x] = -1;
    return 0;
}

static void memo_free(Memo *mm) {
    free(mm->keys);
    free(mm->ols);
    free(mm->table);
}

static int memo_grow_table(Memo *mm) {
    size_t cap = (mm->tmask + 1) * 2;
    i64 *t = malloc(sizeof(i64) * cap);
    if (!t)
        return -1;
    for (size_t x = 0; x < cap; x++)
        t[x] = -1;
    size_t stride = 4 + mm->W;
    for (size_t k = 0; k < mm->nkeys; k++) {
        size_t x = mm->keys[k * stride] & (cap - 1);
        while (t[x] >= 0)
            x = (x + 1) & (cap - 1);
        t[x] = (i64)k;
    }
    free(mm->table);
    mm->table = t;
    mm->tmask = cap - 1;
    return 0;
}

static i64 memo_new_ol(Memo *mm, const u64 *ol, i64 next) {
    int V = mm->V;
    if (mm->nols == mm->ocap) {
        size_t cap = mm->ocap * 2;
        u64 *p = realloc(mm->ols, sizeof(u64) * (1 + V) * cap);
        if (!p)
            return -2;
        mm->ols = p;
        mm->ocap = cap;
    }
    u64 *r = mm->ols + mm->nols * (1 + V);
    r[0] = (u64)next;
    memcpy(r + 1, ol, sizeof(u64) * V);
    return (i64)mm->nols++;
}

/* search.py's memo test: 1 when (base, rel, state) with optional set ol is
 * new (kept: a held entry more), 0 when a seen set with that key is a subset
 * of ol (dominated), -1 when out of memory. */
static int memo_test(Memo *mm, i64 base, i64 state, const u64 *rel, const u64 *ol) {
    int W = mm->W, V = mm->V;
    size_t stride = 4 + W;
    u64 h = hash_key(base, state, rel, W);
    size_t x = h & mm->tmask;
    for (;;) {
        i64 k = mm->table[x];
        if (k < 0)
            break;
        u64 *r = mm->keys + (size_t)k * stride;
        if (r[0] == h && (i64)r[1] == base && (i64)r[2] == state &&
            memcmp(r + 4, rel, sizeof(u64) * W) == 0) {
            for (i64 y = (i64)r[3]; y >= 0;) {
                const u64 *s = mm->ols + (size_t)y * (1 + V);
                int sub = 1;
                for (int w = 0; w < V; w++)
                    if ((s[1 + w] & ol[w]) != s[1 + w]) {
                        sub = 0;
                        break;
                    }
                if (sub)
                    return 0;
                y = (i64)s[0];
            }
            i64 o = memo_new_ol(mm, ol, (i64)r[3]);
            if (o < -1)
                return -1;
            mm->keys[(size_t)k * stride + 3] = (u64)o;
            return 1;
        }
        x = (x + 1) & mm->tmask;
    }
    if (mm->nkeys == mm->kcap) {
        size_t cap = mm->kcap * 2;
        u64 *p = realloc(mm->keys, sizeof(u64) * stride * cap);
        if (!p)
            return -1;
        mm->keys = p;
        mm->kcap = cap;
    }
    i64 o = memo_new_ol(mm, ol, -1);
    if (o < -1)
        return -1;
    u64 *r = mm->keys + mm->nkeys * stride;
    r[0] = h;
    r[1] = (u64)base;
    r[2] = (u64)state;
    r[3] = (u64)o;
    memcpy(r + 4, rel, sizeof(u64) * W);
    mm->table[x] = (i64)mm->nkeys++;
    if (mm->nkeys * 2 > mm->tmask + 1 && memo_grow_table(mm) < 0)
        return -1;
    return 1;
}

/* ------------------------------------------------------------------ helpers */

static double now_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    double t;
    int e;
} TimeIdx;

static inline int before(const TimeIdx *x, const TimeIdx *y) {
    return x->t < y->t || (x->t == y->t && x->e < y->e);
}

/* Sorts v[0..n) by (t, e), as search.py's stable sort by time of entries
 * listed by e: insertion sort on short runs, then merges (no callback per
 * compare; the entries come nearly sorted). -1 when out of memory. */
static int sort_time_idx(TimeIdx *v, Py_ssize_t n) {
    const Py_ssize_t RUN = 16;
    for (Py_ssize_t lo = 0; lo < n; lo += RUN) {
        Py_ssize_t hi = lo + RUN < n ? lo + RUN : n;
        for (Py_ssize_t x = lo + 1; x < hi; x++) {
            TimeIdx t = v[x];
            Py_ssize_t y = x;
            while (y > lo && before(&t, &v[y - 1])) {
                v[y] = v[y - 1];
                y--;
            }
            v[y] = t;
        }
    }
    if (n <= RUN)
        return 0;
    TimeIdx *tmp = malloc(sizeof(TimeIdx) * (size_t)n);
    if (!tmp)
        return -1;
    for (Py_ssize_t w = RUN; w < n; w *= 2) {
        for (Py_ssize_t lo = 0; lo + w < n; lo += 2 * w) {
            Py_ssize_t mid = lo + w, hi = lo + 2 * w < n ? lo + 2 * w : n;
            if (!before(&v[mid], &v[mid - 1]))
                continue; /* already in order */
            Py_ssize_t a = lo, b = mid, k = 0;
            while (a < mid && b < hi)
                tmp[k++] = before(&v[b], &v[a]) ? v[b++] : v[a++];
            while (a < mid)
                tmp[k++] = v[a++];
            memcpy(v + lo, tmp, sizeof(TimeIdx) * (size_t)k);
        }
    }
    free(tmp);
    return 0;
}

static PyObject *int_list(const int *v, Py_ssize_t n) {
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

/* A growable int array (the lists the outcome names). */
typedef struct {
    int *v;
    Py_ssize_t n, cap;
} IntVec;

static int iv_push(IntVec *a, int x) {
    if (a->n == a->cap) {
        Py_ssize_t cap = a->cap ? a->cap * 2 : 16;
        int *p = realloc(a->v, sizeof(int) * cap);
        if (!p)
            return -1;
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* Reading the arguments: 1 ok, 0 not for this module (None), -1 error set. */
static int read_doubles(PyObject *seq, Py_ssize_t n, double *out) {
    PyObject *f = PySequence_Fast(seq, "expected a sequence");
    if (!f)
        return -1;
    if (PySequence_Fast_GET_SIZE(f) != n) {
        Py_DECREF(f);
        PyErr_SetString(PyExc_ValueError, "columns of different lengths");
        return -1;
    }
    PyObject **it = PySequence_Fast_ITEMS(f);
    for (Py_ssize_t x = 0; x < n; x++) {
        double d = PyFloat_AsDouble(it[x]);
        if (d == -1.0 && PyErr_Occurred()) {
            Py_DECREF(f);
            return -1;
        }
        out[x] = d;
    }
    Py_DECREF(f);
    return 1;
}

static int read_ints(PyObject *seq, Py_ssize_t n, i64 *out) {
    PyObject *f = PySequence_Fast(seq, "expected a sequence");
    if (!f)
        return -1;
    if (PySequence_Fast_GET_SIZE(f) != n) {
        Py_DECREF(f);
        PyErr_SetString(PyExc_ValueError, "columns of different lengths");
        return -1;
    }
    PyObject **it = PySequence_Fast_ITEMS(f);
    for (Py_ssize_t x = 0; x < n; x++) {
        if (!PyLong_Check(it[x])) {
            Py_DECREF(f);
            return 0;
        }
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(it[x], &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            Py_DECREF(f);
            return 0;
        }
        out[x] = (i64)v;
    }
    Py_DECREF(f);
    return 1;
}

/* ------------------------------------------------------------------ the search */

typedef struct {
    /* inputs */
    Py_ssize_t n;
    double *calls, *rets;
    i64 *kinds, *seen, *writes, *pred;
    /* lists */
    int m, nd, q;
    int *nxt, *prv, *eop, *kind, *ce, *re_, *dpos, *opos, *onxt, *oprv, *oop;
    double *etime, *ocall;
    char *early;
    /* needs, per optional op: optional seers (in needs' order) and definite
     * seers as sorted ranks with their calls; has_needs 0 = no filter */
    char *has_needs;
    int *so_start, *so_len, *so;
    int *dl_start, *dl_len, *dl;
    double *dc;
} Search;

static void search_free(Search *s) {
    free(s->calls); free(s->rets); free(s->kinds); free(s->seen); free(s->writes);
    free(s->pred); free(s->nxt); free(s->prv); free(s->eop); free(s->kind); free(s->ce);
    free(s->re_); free(s->dpos); free(s->opos); free(s->onxt); free(s->oprv); free(s->oop);
    free(s->etime); free(s->ocall); free(s->early); free(s->has_needs); free(s->so_start);
    free(s->so_len); free(s->so); free(s->dl_start); free(s->dl_len); free(s->dl); free(s->dc);
}


/* The optional ops after ``conc``, called before ``frontier``, in call
 * order (search.py _with_optional_calls). */
static int with_optional_calls(Search *s, IntVec *conc, double frontier) {
    int x = s->onxt[0];
    while (x && s->ocall[x] < frontier) {
        if (iv_push(conc, s->oop[x]) < 0)
            return -1;
        x = s->onxt[x];
    }
    return 0;
}

/* search.py _window: from the first definite op (by call) the search had to
 * undo up to the deadline it was stuck at. */
static PyObject *window_list(Search *s, int low, int stuck, IntVec *conc) {
    double inf = INFINITY, lo = inf, hi;
    for (Py_ssize_t i = 0; i < s->n; i++)
        if (s->rets[i] != inf && s->dpos[i] >= low && s->calls[i] < lo)
            lo = s->calls[i];
    hi = stuck >= 0 ? s->rets[stuck] : inf;
    if (hi == inf) {
        if (conc->n) {
            hi = -inf;
            for (Py_ssize_t x = 0; x < conc->n; x++)
                if (s->calls[conc->v[x]] > hi)
                    hi = s->calls[conc->v[x]];
        }
    }
    IntVec w = {0};
    for (Py_ssize_t i = 0; i < s->n; i++)
        if (s->calls[i] >= lo && s->calls[i] <= hi && iv_push(&w, (int)i) < 0) {
            free(w.v);
            return PyErr_NoMemory();
        }
    PyObject *l = w.n ? int_list(w.v, w.n) : int_list(conc->v, conc->n);
    free(w.v);
    return l;
}

static PyObject *outcome(PyObject *valid, i64 steps, const char *gave_up, i64 held,
                         PyObject *window, const int *prefix, Py_ssize_t nprefix,
                         int has_state, i64 prefix_state, int stuck, IntVec *conc) {
    PyObject *pl = int_list(prefix, nprefix);
    PyObject *cl = int_list(conc->v, conc->n);
    PyObject *st = has_state ? PyLong_FromLongLong(prefix_state) : (Py_INCREF(Py_None), Py_None);
    if (!window) {
        window = PyList_New(0);
    }
    PyObject *r = NULL;
    if (pl && cl && st && window)
        r = Py_BuildValue("OLsLOOOiO", valid, (long long)steps, gave_up, (long long)held,
                          window, pl, st, stuck, cl);
    Py_XDECREF(pl);
    Py_XDECREF(cl);
    Py_XDECREF(st);
    Py_XDECREF(window);
    return r;
}

#define ALLOC(p, count) do { (p) = calloc((size_t)(count) + 1, sizeof(*(p))); if (!(p)) goto nomem; } while (0)

static PyObject *linearize_table(PyObject *self, PyObject *args) {
    PyObject *o_calls, *o_rets, *o_kinds, *o_seen, *o_writes, *o_init, *o_pred, *o_needs,
        *o_deadline, *o_max_held;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOO", &o_calls, &o_rets, &o_kinds, &o_seen, &o_writes,
                          &o_init, &o_pred, &o_needs, &o_deadline, &o_max_held))
        return NULL;
    Search s;
    memset(&s, 0, sizeof s);
    Memo mm;
    memset(&mm, 0, sizeof mm);
    i64 *stk_i = NULL, *stk_state = NULL, *stk_slot = NULL, *stk_fr = NULL, *stk_urgent = NULL,
        *stk_base = NULL;
    u64 *stk_rel = NULL;
    int *best_ops = NULL, *tmp = NULL;
    TimeIdx *ti = NULL;
    IntVec conc = {0};
    PyObject *result = NULL;
    int rc;
    double inf = INFINITY;

    Py_ssize_t n = PyObject_Length(o_calls);
    if (n < 0)
        return NULL;
    if (n == 0 || n > (Py_ssize_t)(INT32_MAX / 4))
        Py_RETURN_NONE;
    s.n = n;
    if (!PyLong_Check(o_init))
        Py_RETURN_NONE;
    int overflow = 0;
    i64 init = PyLong_AsLongLongAndOverflow(o_init, &overflow);
    if (overflow || (init == -1 && PyErr_Occurred()) || init == INT64_MIN) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    int has_deadline = o_deadline != Py_None;
    double deadline = 0.0;
    if (has_deadline) {
        deadline = PyFloat_AsDouble(o_deadline);
        if (deadline == -1.0 && PyErr_Occurred())
            return NULL;
    }
    i64 cap = INT64_MAX;
    if (o_max_held != Py_None) {
        cap = PyLong_AsLongLong(o_max_held);
        if (cap == -1 && PyErr_Occurred())
            return NULL;
    }
    ALLOC(s.calls, n); ALLOC(s.rets, n); ALLOC(s.kinds, n); ALLOC(s.seen, n); ALLOC(s.writes, n);
    ALLOC(s.pred, n);
    if (read_doubles(o_calls, n, s.calls) < 0 || read_doubles(o_rets, n, s.rets) < 0)
        goto error;
    if ((rc = read_ints(o_kinds, n, s.kinds)) <= 0 || (rc = read_ints(o_seen, n, s.seen)) <= 0 ||
        (rc = read_ints(o_writes, n, s.writes)) <= 0)
        goto decline_rc;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s.kinds[i] < 0 || s.kinds[i] > 3 || s.seen[i] == INT64_MIN || s.writes[i] == INT64_MIN)
            goto decline;
    }
    if (o_pred == Py_None) {
        for (Py_ssize_t i = 0; i < n; i++)
            s.pred[i] = -1;
    } else if ((rc = read_ints(o_pred, n, s.pred)) <= 0) {
        goto decline_rc;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (s.pred[i] >= n || (s.pred[i] >= 0 && s.rets[s.pred[i]] != inf))
            goto decline;

    /* the main list: definite call/return entries 1..m in time order */
    int nd = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        nd += s.rets[i] != inf;
    int m = 2 * nd;
    s.nd = nd;
    s.m = m;
    ALLOC(tmp, n); /* tmp: dops */
    {
        int x = 0;
        for (Py_ssize_t i = 0; i < n; i++)
            if (s.rets[i] != inf)
                tmp[x++] = (int)i;
    }
    ALLOC(ti, m > (int)n ? m : (int)n);
    for (int e = 0; e < m; e++) {
        int i = tmp[e < nd ? e : e - nd];
        ti[e].t = (e < nd ? s.calls[i] : s.rets[i]) + 0.0;
        ti[e].e = e;
    }
    if (sort_time_idx(ti, m) < 0)
        goto nomem;
    ALLOC(s.nxt, m + 1); ALLOC(s.prv, m + 1); ALLOC(s.eop, m + 1); ALLOC(s.kind, m + 1);
    ALLOC(s.etime, m + 1); ALLOC(s.ce, n); ALLOC(s.re_, n); ALLOC(s.dpos, n); ALLOC(s.opos, n);
    for (int k = 0; k <= m; k++) {
        s.nxt[k] = k + 1;
        s.prv[k] = k - 1;
    }
    s.nxt[m] = 0;
    s.prv[0] = m;
    s.eop[0] = 0;
    s.etime[0] = inf;
    s.kind[0] = 2;
    {
        int rank = 0;
        for (int k = 1; k <= m; k++) {
            int e = ti[k - 1].e;
            int i = tmp[e < nd ? e : e - nd];
            s.eop[k] = i;
            s.etime[k] = ti[k - 1].t;
            s.kind[k] = e < nd ? 0 : 1;
            if (e < nd) {
                s.ce[i] = k;
                s.dpos[i] = rank++;
            } else {
                s.re_[i] = k;
            }
        }
    }
    /* the optional list: slots 1..q by call time */
    int q = (int)n - nd;
    s.q = q;
    int V = (q + 63) / 64;
    if (V < 1)
        V = 1;
    if (V > VMAX)
        goto decline;
    int W = (nd + 63) / 64;
    if (W < 1)
        W = 1;
    if (W > WMAX)
        W = WMAX;
    {
        int x = 0;
        for (Py_ssize_t i = 0; i < n; i++)
            if (s.rets[i] == inf) {
                ti[x].t = s.calls[i];
                ti[x].e = (int)i;
                x++;
            }
        if (sort_time_idx(ti, q) < 0)
            goto nomem;
    }
    ALLOC(s.onxt, q + 1); ALLOC(s.oprv, q + 1); ALLOC(s.ocall, q + 1); ALLOC(s.oop, q + 1);
    for (int k = 0; k <= q; k++) {
        s.onxt[k] = k + 1;
        s.oprv[k] = k - 1;
    }
    s.onxt[q] = 0;
    s.oprv[0] = q;
    s.ocall[0] = inf;
    s.oop[0] = -1;
    for (int r = 0; r < q; r++) {
        s.ocall[r + 1] = s.calls[ti[r].e];
        s.oop[r + 1] = ti[r].e;
        s.opos[ti[r].e] = r;
    }
    ALLOC(s.early, n);
    for (Py_ssize_t i = 0; i < n; i++)
        s.early[i] = s.calls[i] < s.rets[i];
    /* needs, split as search.py splits them when first tested */
    ALLOC(s.has_needs, n); ALLOC(s.so_start, n); ALLOC(s.so_len, n); ALLOC(s.dl_start, n);
    ALLOC(s.dl_len, n);
    if (o_needs != Py_None) {
        PyObject *nf = PySequence_Fast(o_needs, "needs must be a sequence");
        if (!nf)
            goto error;
        if (PySequence_Fast_GET_SIZE(nf) != n) {
            Py_DECREF(nf);
            PyErr_SetString(PyExc_ValueError, "columns of different lengths");
            goto error;
        }
        PyObject **items = PySequence_Fast_ITEMS(nf);
        Py_ssize_t total = 0;
        for (Py_ssize_t i = 0; i < n; i++)
            if (s.rets[i] == inf && items[i] != Py_None) {
                Py_ssize_t len = PyObject_Length(items[i]);
                if (len < 0) {
                    Py_DECREF(nf);
                    goto error;
                }
                total += len;
            }
        ALLOC(s.so, total); ALLOC(s.dl, total); ALLOC(s.dc, total);
        Py_ssize_t so_n = 0, dl_n = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (s.rets[i] != inf || items[i] == Py_None)
                continue;
            PyObject *sf = PySequence_Fast(items[i], "needs[i] must be a sequence");
            if (!sf) {
                Py_DECREF(nf);
                goto error;
            }
            Py_ssize_t len = PySequence_Fast_GET_SIZE(sf);
            PyObject **si = PySequence_Fast_ITEMS(sf);
            s.has_needs[i] = 1;
            s.so_start[i] = (int)so_n;
            s.dl_start[i] = (int)dl_n;
            Py_ssize_t d0 = dl_n;
            int bad = 0;
            for (Py_ssize_t x = 0; x < len; x++) {
                long o2 = PyLong_AsLong(si[x]);
                if (o2 == -1 && PyErr_Occurred()) {
                    bad = 1;
                    break;
                }
                if (o2 < 0 || o2 >= n) {
                    bad = 2;
                    break;
                }
                if (s.rets[o2] == inf) {
                    s.so[so_n++] = (int)o2;
                } else {
                    s.dl[dl_n++] = (int)o2; /* an op for now: sorted and ranked below */
                }
            }
            Py_DECREF(sf);
            if (bad) {
                Py_DECREF(nf);
                if (bad == 1)
                    goto error;
                goto decline;
            }
            s.so_len[i] = (int)(so_n - s.so_start[i]);
            s.dl_len[i] = (int)(dl_n - d0);
            /* the definite seers by rank, with their calls */
            Py_ssize_t cnt = dl_n - d0;
            if (cnt > 1) {
                TimeIdx *buf = malloc(sizeof(TimeIdx) * (size_t)cnt);
                if (!buf) {
                    Py_DECREF(nf);
                    goto nomem;
                }
                for (Py_ssize_t x = 0; x < cnt; x++) {
                    buf[x].t = (double)s.dpos[s.dl[d0 + x]];
                    buf[x].e = s.dl[d0 + x];
                }
                if (sort_time_idx(buf, cnt) < 0) { /* by rank (t); ranks are unique */
                    free(buf);
                    Py_DECREF(nf);
                    goto nomem;
                }
                for (Py_ssize_t x = 0; x < cnt; x++)
                    s.dl[d0 + x] = buf[x].e;
                free(buf);
            }
            for (Py_ssize_t x = 0; x < cnt; x++) {
                int o2 = s.dl[d0 + x];
                s.dl[d0 + x] = s.dpos[o2];
                s.dc[d0 + x] = s.calls[o2];
            }
        }
        Py_DECREF(nf);
    }

    /* the loop's state */
    ALLOC(stk_i, n); ALLOC(stk_state, n); ALLOC(stk_slot, n); ALLOC(stk_fr, n);
    ALLOC(stk_urgent, n); ALLOC(stk_base, n); ALLOC(best_ops, n);
    stk_rel = calloc((size_t)(n + 1) * W, sizeof(u64));
    if (!stk_rel)
        goto nomem;
    if (memo_init(&mm, W, V) < 0)
        goto nomem;
    u64 rel[WMAX], rel2[WMAX], ol[VMAX], ol2[VMAX];
    memset(rel, 0, sizeof rel);
    memset(ol, 0, sizeof ol);
    Py_ssize_t sp = 0; /* stack size */
    i64 base = 0, base2 = 0, state = init, s2 = 0;
    Py_ssize_t best = -1, kept = 0;
    i64 best_state = 0;
    int has_best_state = 0, stuck = -1;
    i64 held = 0, steps = 0, next_check = CHECK_EVERY;
    int low = (int)n;
    int fresh_node = 1, pending = 0, urgent = -1, k = 0, phase = 0, j = 0;
    double frontier = inf;
    int i = -1, slot = 0;
    int fr = s.nxt[0];
    while (s.kind[fr] == 0)
        fr = s.nxt[fr];
    const char *why = NULL;
    int *nxt = s.nxt, *prv = s.prv, *kindv = s.kind, *eop = s.eop;
    int *onxt = s.onxt, *oprv = s.oprv;

    for (;;) {
        if (steps >= next_check) {
            next_check = steps + CHECK_EVERY;
            if (has_deadline && now_monotonic() > deadline) {
                why = "time";
                goto give_up;
            }
        }
        if (fresh_node) {
            int x = fr;
            if (kindv[x] == 2) {
                for (Py_ssize_t y = 0; y < sp; y++)
                    best_ops[y] = (int)stk_i[y];
                result = outcome(Py_True, steps, "", held, NULL, best_ops, sp, 1, state, stuck,
                                 &conc);
                goto done;
            }
            urgent = eop[x];
            pending = 0;
            k = nxt[0];
            phase = 0;
            fresh_node = 0;
            if (s.early[urgent]) {
                /* the fast path: the frontier op first, through the same block */
                i64 kk = s.kinds[urgent];
                steps++;
                if (kk == 1)
                    s2 = s.writes[urgent];
                else if (kk == 3)
                    s2 = state != s.seen[urgent] ? state : INT64_MIN;
                else
                    s2 = state == s.seen[urgent] ? s.writes[urgent] : INT64_MIN;
                if (s2 != INT64_MIN) {
                    pending = 1;
                    i = urgent;
                    slot = 0;
                }
            }
            if (!pending)
                i = -1;
        } else {
            i = -1;
        }
        if (i < 0) {
            if (phase == 0 && kindv[k] == 0) {
                i = eop[k];
                k = nxt[k];
                if (i == urgent)
                    continue;
                slot = 0;
            } else {
                int o = -1;
                if (phase == 0) {
                    phase = 1;
                    frontier = s.etime[k];
                    j = onxt[0];
                }
                while (j && s.ocall[j] < frontier) {
                    int oo = s.oop[j];
                    i64 qq = s.pred[oo];
                    if (qq < 0 || ((ol[s.opos[qq] >> 6] >> (s.opos[qq] & 63)) & 1)) {
                        if (!s.has_needs[oo]) {
                            o = oo;
                            break;
                        }
                        int seen_by = 0;
                        int *so = s.so + s.so_start[oo];
                        for (int y = 0; y < s.so_len[oo]; y++) {
                            int o2 = so[y];
                            if (s.calls[o2] >= frontier)
                                break;
                            if (!((ol[s.opos[o2] >> 6] >> (s.opos[o2] & 63)) & 1)) {
                                seen_by = 1;
                                break;
                            }
                        }
                        if (!seen_by) {
                            int *dl = s.dl + s.dl_start[oo];
                            double *dc = s.dc + s.dl_start[oo];
                            int nx = s.dl_len[oo], lo = 0, hi = nx;
                            while (lo < hi) { /* bisect_left(dl, base) */
                                int mid = (lo + hi) / 2;
                                if (dl[mid] < base)
                                    lo = mid + 1;
                                else
                                    hi = mid;
                            }
                            for (int y = lo; y < nx && dc[y] < frontier; y++) {
                                i64 d = dl[y] - base;
                                int bit = d < 64 * W && ((rel[d >> 6] >> (d & 63)) & 1);
                                if (!bit) {
                                    seen_by = 1;
                                    break;
                                }
                            }
                        }
                        if (seen_by) {
                            o = oo;
                            break;
                        }
                    }
                    j = onxt[j];
                }
                if (o < 0) {
                    /* no candidate left at this node: backtrack */
                    if (sp > best) {
                        best = sp;
                        for (Py_ssize_t y = kept; y < sp; y++)
                            best_ops[y] = (int)stk_i[y];
                        kept = best;
                        best_state = state;
                        has_best_state = 1;
                        stuck = eop[k];
                        conc.n = 0;
                        for (int x = nxt[0]; x != k; x = nxt[x])
                            if (kindv[x] == 0 && iv_push(&conc, eop[x]) < 0)
                                goto nomem;
                        if (with_optional_calls(&s, &conc, frontier) < 0)
                            goto nomem;
                    }
                    if (sp == 0) {
                        result = outcome(Py_False, steps, "", held, NULL, best_ops, best,
                                         has_best_state, best_state, stuck, &conc);
                        goto done;
                    }
                    sp--;
                    i = (int)stk_i[sp];
                    state = stk_state[sp];
                    slot = (int)stk_slot[sp];
                    fr = (int)stk_fr[sp];
                    urgent = (int)stk_urgent[sp];
                    base = stk_base[sp];
                    memcpy(rel, stk_rel + (size_t)sp * W, sizeof(u64) * W);
                    if (sp < kept)
                        kept = sp;
                    if (base < low)
                        low = (int)base;
                    steps++;
                    if (slot) {
                        phase = 1;
                        int p = s.opos[i];
                        ol[p >> 6] ^= (u64)1 << (p & 63);
                        onxt[oprv[slot]] = slot;
                        oprv[onxt[slot]] = slot;
                        j = onxt[slot];
                        k = fr;
                        frontier = s.etime[k];
                    } else {
                        int r = s.re_[i], c = s.ce[i];
                        nxt[prv[r]] = r;
                        prv[nxt[r]] = r;
                        nxt[prv[c]] = c;
                        prv[nxt[c]] = c;
                        k = i == urgent ? nxt[0] : nxt[c];
                        phase = 0;
                    }
                    continue;
                }
                i = o;
                slot = j;
                j = onxt[j];
            }
        }
        /* place candidate i (definite, or optional in slot) if legal and new */
        if (pending) {
            pending = 0;
        } else {
            i64 kk = s.kinds[i];
            steps++;
            if (kk == 1)
                s2 = s.writes[i];
            else if (kk == 3)
                s2 = state != s.seen[i] ? state : INT64_MIN;
            else
                s2 = state == s.seen[i] ? s.writes[i] : INT64_MIN;
            if (s2 == INT64_MIN)
                continue;
        }
        memcpy(ol2, ol, sizeof(u64) * V);
        memcpy(rel2, rel, sizeof(u64) * W);
        base2 = base;
        if (slot) {
            int p = s.opos[i];
            ol2[p >> 6] |= (u64)1 << (p & 63);
        } else {
            i64 d = s.dpos[i] - base;
            if (d >= 64 * W)
                goto decline; /* wider than this module keeps: the Python search */
            rel2[d >> 6] |= (u64)1 << (d & 63);
            if (d == 0) {
                /* the trailing ones: settled, shifted into base */
                int t = 0;
                for (int w = 0; w < W; w++) {
                    if (rel2[w] == ~(u64)0) {
                        t += 64;
                        continue;
                    }
                    t += __builtin_ctzll(~rel2[w]);
                    break;
                }
                int ws = t >> 6, bs = t & 63;
                for (int w = 0; w < W; w++) {
                    u64 lo = w + ws < W ? rel2[w + ws] : 0;
                    u64 hi = w + ws + 1 < W ? rel2[w + ws + 1] : 0;
                    rel2[w] = bs ? (lo >> bs) | (hi << (64 - bs)) : lo;
                }
                base2 += t;
            }
        }
        rc = memo_test(&mm, base2, s2, rel2, ol2);
        if (rc < 0)
            goto nomem;
        if (rc == 0)
            continue; /* a seen configuration had every option this one has */
        held++;
        if (held + sp > cap) {
            held += sp;
            why = "memory";
            goto give_up;
        }
        stk_i[sp] = i;
        stk_state[sp] = state;
        stk_slot[sp] = slot;
        stk_fr[sp] = fr;
        stk_urgent[sp] = urgent;
        stk_base[sp] = base;
        memcpy(stk_rel + (size_t)sp * W, rel, sizeof(u64) * W);
        sp++;
        state = s2;
        base = base2;
        memcpy(rel, rel2, sizeof(u64) * W);
        memcpy(ol, ol2, sizeof(u64) * V);
        if (slot) {
            int a = oprv[slot], b = onxt[slot];
            onxt[a] = b;
            oprv[b] = a;
        } else {
            int c = s.ce[i], a = prv[c], b = nxt[c];
            nxt[a] = b;
            prv[b] = a;
            int r = s.re_[i];
            a = prv[r];
            b = nxt[r];
            nxt[a] = b;
            prv[b] = a;
            if (r == fr) {
                while (kindv[b] == 0)
                    b = nxt[b];
                fr = b;
            }
        }
        fresh_node = 1;
    }

give_up:
    /* search.py _give_up: unknown, with the longest prefix reached and the
     * window of operations it could not settle */
    {
        if (base < low)
            low = (int)base;
        Py_ssize_t np;
        if (best < 0) {
            /* _frontier_window: the operations pending at the current node */
            for (Py_ssize_t y = 0; y < sp; y++)
                best_ops[y] = (int)stk_i[y];
            np = sp;
            stuck = kindv[fr] == 1 ? eop[fr] : -1;
            conc.n = 0;
            for (int x = nxt[0]; x != fr && kindv[x] == 0; x = nxt[x])
                if (iv_push(&conc, eop[x]) < 0)
                    goto nomem;
            if (with_optional_calls(&s, &conc, s.etime[fr]) < 0)
                goto nomem;
        } else {
            np = best;
        }
        PyObject *win = window_list(&s, low, stuck, &conc);
        if (!win)
            goto error;
        result = outcome(Py_None, steps, why, held, win, best_ops, np, best >= 0 && has_best_state,
                         best_state, stuck, &conc);
        goto done;
    }

nomem:
    PyErr_NoMemory();
    goto error;
decline_rc:
    if (rc < 0)
        goto error;
decline:
    Py_INCREF(Py_None);
    result = Py_None;
    goto done;
error:
    result = NULL;
done:
    search_free(&s);
    memo_free(&mm);
    free(stk_i); free(stk_state); free(stk_slot); free(stk_fr); free(stk_urgent); free(stk_base);
    free(stk_rel); free(best_ops); free(tmp); free(ti); free(conc.v);
    return result;
}

static PyMethodDef methods[] = {
    {"linearize_table", linearize_table, METH_VARARGS,
     "linearize_table(calls, rets, kinds, seen, writes, init, pred, needs, deadline, max_held)"
     " -> (valid, steps, gave_up, held, window, prefix, prefix_state, stuck, concurrent) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_search",
    "The compiled twin of checker/search.py's linearize for table steps.", -1, methods,
};

PyMODINIT_FUNC PyInit__search(void) {
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddStringConstant(m, "SOURCE_SHA256", SOURCE_SHA256) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
