/*
 * The compiled hot paths of corral's Promise.
 *
 * corral/_core/_promise.py is the whole implementation and the reference for every
 * behaviour here. This module replaces a few of its hot functions with C versions that do
 * exactly the same thing:
 *
 *   Promise.then, Promise._register, Promise._complete   (methods)
 *   _run_then                                             (the job runner of then())
 *   LoopJobs.drain                                        (the microtask checkpoint)
 *   the promise lock                                      (a reentrant lock)
 *   the running-loop lookup                               (cached per thread)
 *
 * It defines PromiseCore, the fields of a promise in a C struct; Promise, the Python class,
 * subclasses it and adds everything else. LoopJobs stays a Python class with __slots__:
 * install() reads the offsets of its slots from the member descriptors that __slots__
 * created, and the drain reads and writes them directly, as the descriptors would.
 * Everything that is not hot (resolution of awaitables and thenables, routing to other
 * threads' loops, waking waiters in other threads, the trampoline, error messages) stays
 * in Python and is called from here.
 *
 * Locking. One process-wide reentrant lock guards every promise's state, in Python and
 * here alike (Python code takes it with `with _LOCK:`). C code takes it without a Python
 * call; while it holds it, other threads that want it wait with the GIL released.
 *
 * The running loop. asyncio._get_running_loop() on Python 3.11 makes a getpid() system
 * call each time a loop runs (to notice a fork). There, the loop found last is remembered
 * (weakly) and reused while its `_thread_id` is the calling thread's identity, which
 * BaseEventLoop sets for exactly as long as it runs in that thread; a fork forgets it
 * (_speedups.py registers that). Loops without `_thread_id` (uvloop's) are looked up
 * every time. On 3.12 and later asyncio's lookup is cheaper than the check, and is used
 * as it is.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <pythread.h>

#ifdef Py_GIL_DISABLED
#error "the promise speedups rely on the GIL; corral uses its pure-Python promise here"
#endif

#ifndef CORRAL_SOURCE_SHA256
#define CORRAL_SOURCE_SHA256 ""
#endif

/* ------------------------------------------------------------------ the lock */

/* A reentrant lock whose state (owner, count) lives under the GIL: taking it when nobody
   holds it, or again by its holder, is a few plain stores. A thread that finds it held by
   another waits on `gate` with the GIL released; releasing the lock opens the gate when
   somebody waits. `gate` is a PyThread lock used as a binary semaphore: it starts closed
   (acquired), `gate_open` says whether a release is pending, and every change to the
   counters happens with the GIL held. */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock gate;
    unsigned long owner;
    long count;
    long waiters;
    int gate_open;
} LockObject;

static void
lock_enter(LockObject *lock)
{
    unsigned long me = PyThread_get_thread_ident();
    if (lock->count > 0) {
        if (lock->owner == me) {
            lock->count++;
            return;
        }
        do {
            lock->waiters++;
            Py_BEGIN_ALLOW_THREADS
            PyThread_acquire_lock(lock->gate, WAIT_LOCK);
            Py_END_ALLOW_THREADS
            lock->waiters--;
            lock->gate_open = 0;
        } while (lock->count > 0);
    }
    lock->owner = me;
    lock->count = 1;
}

static void
lock_exit(LockObject *lock)
{
    if (--lock->count == 0) {
        lock->owner = 0;
        if (lock->waiters > 0 && !lock->gate_open) {
            lock->gate_open = 1;
            PyThread_release_lock(lock->gate);
        }
    }
}

static PyThread_type_lock
closed_gate(void)
{
    PyThread_type_lock gate = PyThread_allocate_lock();
    if (gate == NULL) {
        PyErr_SetString(PyExc_MemoryError, "cannot allocate a lock");
        return NULL;
    }
    PyThread_acquire_lock(gate, WAIT_LOCK);
    return gate;
}

static PyObject *
Lock_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Lock() takes no arguments");
        return NULL;
    }
    LockObject *self = (LockObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->gate = closed_gate();
    if (self->gate == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
Lock_dealloc(LockObject *self)
{
    if (self->gate != NULL) {
        if (!self->gate_open) {
            PyThread_release_lock(self->gate);
        }
        PyThread_free_lock(self->gate);
    }
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free((PyObject *)self);
}

static PyObject *
Lock_acquire(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    lock_enter(self);
    Py_RETURN_TRUE;
}

static PyObject *
Lock_release(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->count == 0 || self->owner != PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError, "cannot release a lock this thread does not hold");
        return NULL;
    }
    lock_exit(self);
    Py_RETURN_NONE;
}

static PyObject *
Lock_exit(LockObject *self, PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(nargs))
{
    return Lock_release(self, NULL);
}

static PyObject *
Lock_is_owned(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->count > 0 && self->owner == PyThread_get_thread_ident());
}

static PyObject *
Lock_at_fork_reinit(LockObject *self, PyObject *Py_UNUSED(ignored))
{
    /* In a forked child only the forking thread exists: nobody waits, and a lock that
       another thread held is held by nobody now. The old gate may be in any state: it is
       left behind, not freed. */
    PyThread_type_lock gate = closed_gate();
    if (gate == NULL) {
        return NULL;
    }
    self->gate = gate;
    self->gate_open = 0;
    self->waiters = 0;
    if (self->count > 0 && self->owner != PyThread_get_thread_ident()) {
        self->owner = 0;
        self->count = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *
Lock_repr(LockObject *self)
{
    if (self->count == 0) {
        return PyUnicode_FromString("<corral promise lock unlocked>");
    }
    return PyUnicode_FromFormat("<corral promise lock held by thread %lu, %ld deep>",
                                self->owner, self->count);
}

static PyMethodDef Lock_methods[] = {
    {"acquire", (PyCFunction)Lock_acquire, METH_NOARGS, "Take the lock (reentrant); True."},
    {"release", (PyCFunction)Lock_release, METH_NOARGS, "Release it once."},
    {"__enter__", (PyCFunction)Lock_acquire, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Lock_exit, METH_FASTCALL, NULL},
    {"_is_owned", (PyCFunction)Lock_is_owned, METH_NOARGS, "Whether this thread holds it."},
    {"_at_fork_reinit", (PyCFunction)Lock_at_fork_reinit, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "corral._core._promise_speedups.Lock",
    .tp_doc = "The reentrant lock that guards every promise's state.",
    .tp_basicsize = sizeof(LockObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Lock_new,
    .tp_dealloc = (destructor)Lock_dealloc,
    .tp_repr = (reprfunc)Lock_repr,
    .tp_methods = Lock_methods,
};

static LockObject *LOCK = NULL;

/* ------------------------------------------------------------------ the promise fields */

/* Internal states, as in _promise.py. */
enum { PENDING = 0, FOLLOWING = 1, FULFILLED = 2, REJECTED = 3 };
static PyObject *STATE_OBJECTS[4];

static PyObject *RUN_THEN = NULL; /* the compiled then() runner: run_then(child, queue) */

/* The fields of a promise; _promise.py documents each under the same name.

   A pending promise uses its job's fields (_source, _arg1, _arg2) and a settled one its
   outcome's (_value, _tb, and the RejectionWatch in _handled): never both, since a
   promise drops its job before it settles. So each pair shares one pointer, read and
   written from Python through the getters and setters below, which look at the state.
   Eight words after the object header keep a promise in 96 bytes, which is what a long
   chain costs the garbage collector and the memory allocator.

   An object field holding NULL reads as None from Python. */
enum { UNHANDLED = 0, HANDLED = 1, WATCHED = 2 };

typedef struct {
    PyObject_HEAD
    PyObject *reactions;
    PyObject *source_or_value; /* pending: _source; settled: _value */
    PyObject *arg1_or_tb;      /* pending: _arg1; settled: _tb */
    PyObject *loop;
    PyObject *arg2_or_watch;   /* pending: _arg2; settled and WATCHED: the RejectionWatch */
    int state;
    int handled;               /* _handled: False, True, or WATCHED (the watch object) */
    PyObject *runner;
    PyObject *weakreflist;
} PromiseObject;

#define P(obj) ((PromiseObject *)(obj))
#define OR_NONE(field) ((field) == NULL ? Py_None : (field))
#define SETTLED(obj) (P(obj)->state >= FULFILLED)

/* Store a new reference to `value` (NULL for None) in `*field`, dropping what was there. */
static inline void
store(PyObject **field, PyObject *value)
{
    PyObject *old = *field;
    if (value == Py_None) {
        value = NULL;
    }
    Py_XINCREF(value);
    *field = value;
    Py_XDECREF(old);
}

/* Visit `field` unless it holds nothing or a constant. */
#define VISIT_FIELD(field)                                                                 \
    do {                                                                                   \
        PyObject *o_ = (field);                                                            \
        if (o_ != NULL && o_ != Py_None && o_ != Py_False && o_ != Py_True) {              \
            int r_ = visit(o_, arg);                                                       \
            if (r_) {                                                                      \
                return r_;                                                                 \
            }                                                                              \
        }                                                                                  \
    } while (0)

/* What a promise refers to. Not visited: the runner, always one of the module-level
   runner functions, which their modules keep alive. */
static int
PromiseCore_traverse(PromiseObject *self, visitproc visit, void *arg)
{
    VISIT_FIELD(self->reactions);
    VISIT_FIELD(self->source_or_value);
    VISIT_FIELD(self->arg1_or_tb);
    VISIT_FIELD(self->loop);
    VISIT_FIELD(self->arg2_or_watch);
    return 0;
}

static int
PromiseCore_clear(PromiseObject *self)
{
    Py_CLEAR(self->reactions);
    Py_CLEAR(self->source_or_value);
    Py_CLEAR(self->arg1_or_tb);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->arg2_or_watch);
    Py_CLEAR(self->runner);
    return 0;
}

/* The dealloc of PromiseCore, and of Promise, the Python class over it (install() puts it
   in place of subtype_dealloc, which it does the work of for a class that adds no field,
   no __del__ and no weak references of its own; install() checks). The trashcan keeps
   freeing a long chain from recursing deeply. */
static void
PromiseCore_dealloc(PromiseObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, PromiseCore_dealloc)
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    PromiseCore_clear(self);
    type->tp_free((PyObject *)self);
    if (type->tp_flags & Py_TPFLAGS_HEAPTYPE) {
        Py_DECREF(type); /* an instance of a heap type holds a reference to it */
    }
    Py_TRASHCAN_END
}

static PyObject *
PromiseCore_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_Format(PyExc_TypeError, "%s() takes no arguments", type->tp_name);
        return NULL;
    }
    return type->tp_alloc(type, 0); /* zeroed: pending, unhandled, every field None */
}

/* The shared fields from Python. `closure` says which pointer and which phase. */
typedef struct {
    Py_ssize_t offset;
    int settled; /* 1: the settled meaning (_value, _tb); 0: the pending one (_source, ...) */
    const char *name;
} SharedField;

static const SharedField FIELD_SOURCE = {offsetof(PromiseObject, source_or_value), 0, "_source"};
static const SharedField FIELD_VALUE = {offsetof(PromiseObject, source_or_value), 1, "_value"};
static const SharedField FIELD_ARG1 = {offsetof(PromiseObject, arg1_or_tb), 0, "_arg1"};
static const SharedField FIELD_TB = {offsetof(PromiseObject, arg1_or_tb), 1, "_tb"};
static const SharedField FIELD_ARG2 = {offsetof(PromiseObject, arg2_or_watch), 0, "_arg2"};

#define FIELD_AT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

static PyObject *
shared_get(PyObject *self, void *closure)
{
    const SharedField *field = closure;
    if (SETTLED(self) != field->settled) {
        Py_RETURN_NONE; /* the other phase's field: this one is None */
    }
    return Py_NewRef(OR_NONE(FIELD_AT(self, field->offset)));
}

static int
shared_set(PyObject *self, PyObject *value, void *closure)
{
    const SharedField *field = closure;
    if (value == NULL) {
        value = Py_None; /* del: back to None */
    }
    if (SETTLED(self) != field->settled) {
        if (value == Py_None) {
            return 0; /* None already */
        }
        PyErr_Format(PyExc_RuntimeError, "%s of a %s promise cannot be set", field->name,
                     SETTLED(self) ? "settled" : "pending");
        return -1;
    }
    store(&FIELD_AT(self, field->offset), value);
    return 0;
}

static PyObject *
handled_get(PyObject *self, void *Py_UNUSED(closure))
{
    if (P(self)->handled == WATCHED) {
        return Py_NewRef(OR_NONE(P(self)->arg2_or_watch));
    }
    return PyBool_FromLong(P(self)->handled == HANDLED);
}

static int
handled_set(PyObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == Py_True || value == Py_False) {
        if (P(self)->handled == WATCHED) {
            Py_CLEAR(P(self)->arg2_or_watch);
        }
        P(self)->handled = value == Py_True ? HANDLED : UNHANDLED;
        return 0;
    }
    if (value == NULL || value == Py_None || !SETTLED(self)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_handled is True, False, or the watch of a settled promise");
        return -1;
    }
    store(&P(self)->arg2_or_watch, value);
    P(self)->handled = WATCHED;
    return 0;
}

static PyGetSetDef PromiseCore_getset[] = {
    {"_source", shared_get, shared_set, NULL, (void *)&FIELD_SOURCE},
    {"_value", shared_get, shared_set, NULL, (void *)&FIELD_VALUE},
    {"_arg1", shared_get, shared_set, NULL, (void *)&FIELD_ARG1},
    {"_tb", shared_get, shared_set, NULL, (void *)&FIELD_TB},
    {"_arg2", shared_get, shared_set, NULL, (void *)&FIELD_ARG2},
    {"_handled", handled_get, handled_set, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef PromiseCore_members[] = {
    {"_state", T_INT, offsetof(PromiseObject, state), 0, NULL},
    {"_reactions", T_OBJECT, offsetof(PromiseObject, reactions), 0, NULL},
    {"_loop", T_OBJECT, offsetof(PromiseObject, loop), 0, NULL},
    {"_runner", T_OBJECT, offsetof(PromiseObject, runner), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

/* ------------------------------------------------------------------ installed state */

/* LoopJobs slots. */
enum { Q_JOBS, Q_LOOP, Q_REF, Q_SCHEDULED, QUEUE_SLOTS };
static const char *const QUEUE_SLOT_NAMES[QUEUE_SLOTS] = {"jobs", "loop", "ref", "scheduled"};
static Py_ssize_t Q_OFF[QUEUE_SLOTS];

static PyTypeObject *PromiseType = NULL; /* Promise, the Python class over PromiseCore */
static PyTypeObject *LoopJobsType = NULL;

/* Python helpers from _promise.py and _promise_jobs.py. */
static PyObject *UNKNOWN = NULL;          /* "the caller's queue, not looked up yet" */
static PyObject *PLAIN = NULL;            /* frozenset of exact plain types */
static PyObject *queue_now = NULL;        /* _queue_now(job, loop) */
static PyObject *route = NULL;            /* _route(job, queue, loop) -> queue */
static PyObject *wake_waiter = NULL;      /* _wake_waiter(waiter, state, value, tb, loop) */
static PyObject *drain_trampoline = NULL; /* drain_trampoline() */
static PyObject *queue_for = NULL;        /* queue_for(loop) -> queue */
static PyObject *reject_with = NULL;      /* _reject_with(child, exc, queue) */
static PyObject *not_callable = NULL;     /* _not_callable_message(name, value) -> str */
static PyObject *argument_type_error = NULL;
static PyObject *get_running_loop = NULL; /* asyncio._get_running_loop */
static PyObject *deque_append = NULL;
static PyObject *deque_popleft = NULL;


static PyObject *str_thread_id, *str_watch_rejection, *str_disarm, *str_resolve,
    *str_get_loop, *str_done, *str_set_result, *str_schedule, *str_drain, *str_is_closed,
    *str_call_soon, *str_jobs, *str_loop, *str_scheduled, *str_on_fulfilled,
    *str_on_rejected;

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))
#define QSLOT(obj, which) SLOT(obj, Q_OFF[which])

/* Store a new reference to `value` in a __slots__ slot, dropping what was there. */
static inline void
set_slot(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    PyObject *old = SLOT(obj, offset);
    Py_INCREF(value);
    SLOT(obj, offset) = value;
    Py_XDECREF(old);
}

/* ------------------------------------------------------------------ the running loop */

static PyObject *cached_loop_ref = NULL; /* weak reference to the loop found last */

static PyObject *
weak_target(PyObject *ref)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *target = NULL;
    if (PyWeakref_GetRef(ref, &target) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return target; /* new reference or NULL */
#else
    PyObject *target = PyWeakref_GET_OBJECT(ref);
    if (target == Py_None) {
        return NULL;
    }
    Py_INCREF(target);
    return target;
#endif
}

#if PY_VERSION_HEX < 0x030C0000
/* 1 if `loop` runs in this thread by its `_thread_id`, 0 if not, -1 if it cannot say. */
static int
runs_here(PyObject *loop)
{
    PyObject *thread_id = PyObject_GetAttr(loop, str_thread_id);
    if (thread_id == NULL) {
        PyErr_Clear();
        return -1;
    }
    int result;
    if (thread_id == Py_None) {
        result = 0;
    }
    else if (PyLong_CheckExact(thread_id)) {
        unsigned long ident = PyLong_AsUnsignedLong(thread_id);
        if (ident == (unsigned long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            result = -1;
        }
        else {
            result = ident == PyThread_get_thread_ident();
        }
    }
    else {
        result = -1;
    }
    Py_DECREF(thread_id);
    return result;
}

static PyObject *uncached_type = NULL; /* a loop type without `_thread_id`: not remembered */

/* The loop running in this thread (new reference), Py_None if none; NULL on error. */
static PyObject *
running_loop(void)
{
    if (cached_loop_ref != NULL) {
        PyObject *loop = weak_target(cached_loop_ref);
        if (loop != NULL) {
            if (runs_here(loop) == 1) {
                return loop;
            }
            Py_DECREF(loop);
        }
    }
    PyObject *loop = PyObject_CallNoArgs(get_running_loop);
    if (loop == NULL || loop == Py_None || (PyObject *)Py_TYPE(loop) == uncached_type) {
        return loop;
    }
    int here = runs_here(loop);
    if (here == 1) {
        PyObject *ref = PyWeakref_NewRef(loop, NULL);
        if (ref == NULL) {
            PyErr_Clear();
        }
        else {
            Py_XSETREF(cached_loop_ref, ref);
        }
    }
    else if (here < 0) { /* so its type is not asked again, and again */
        Py_XSETREF(uncached_type, Py_NewRef((PyObject *)Py_TYPE(loop)));
    }
    return loop;
}
#else
/* The loop running in this thread (new reference), Py_None if none; NULL on error. */
static PyObject *
running_loop(void)
{
    return PyObject_CallNoArgs(get_running_loop);
}
#endif

static PyObject *
speedups_running_loop(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return running_loop();
}

static PyObject *
speedups_forget_running_loop(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    Py_CLEAR(cached_loop_ref);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ job queues */

static inline PyObject *
queue_attr(PyObject *queue, int which, PyObject *name)
{
    if (Py_TYPE(queue) == LoopJobsType) {
        PyObject *value = QSLOT(queue, which);
        if (value != NULL) {
            Py_INCREF(value);
            return value;
        }
    }
    return PyObject_GetAttr(queue, name);
}

static int
deque_push(PyObject *jobs, PyObject *job)
{
    PyObject *args[2] = {jobs, job};
    PyObject *result = PyObject_Vectorcall(deque_append, args, 2, NULL);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* Queue `job` on `queue` (a local queue, whose loop is `loop`) and schedule its drain. */
static int
push_local(PyObject *queue, PyObject *job, PyObject *loop)
{
    PyObject *jobs = queue_attr(queue, Q_JOBS, str_jobs);
    if (jobs == NULL) {
        return -1;
    }
    int failed = deque_push(jobs, job);
    Py_DECREF(jobs);
    if (failed) {
        return -1;
    }
    PyObject *scheduled = queue_attr(queue, Q_SCHEDULED, str_scheduled);
    if (scheduled == NULL) {
        return -1;
    }
    int is_scheduled = PyObject_IsTrue(scheduled);
    Py_DECREF(scheduled);
    if (is_scheduled < 0) {
        return -1;
    }
    if (!is_scheduled) {
        PyObject *result = PyObject_CallMethodOneArg(queue, str_schedule, loop);
        if (result == NULL) {
            return -1;
        }
        Py_DECREF(result);
    }
    return 0;
}

/* ------------------------------------------------------------------ register / complete */

/* Promise._register: 1 registered, 0 settled already (nothing registered), -1 error. */
static int
register_impl(PyObject *self, PyObject *entry)
{
    lock_enter(LOCK);
    if (P(self)->handled != HANDLED) {
        PyObject *watch = NULL;
        if (P(self)->handled == WATCHED) {
            watch = P(self)->arg2_or_watch; /* taken over */
            P(self)->arg2_or_watch = NULL;
        }
        P(self)->handled = HANDLED;
        if (watch != NULL) {
            PyObject *result = PyObject_CallMethodNoArgs(watch, str_disarm);
            Py_DECREF(watch);
            if (result == NULL) {
                lock_exit(LOCK);
                return -1;
            }
            Py_DECREF(result);
        }
    }
    if (P(self)->state >= FULFILLED) {
        lock_exit(LOCK);
        return 0;
    }
    PyObject *reactions = OR_NONE(P(self)->reactions);
    if (reactions == Py_None) {
        store(&P(self)->reactions, entry);
    }
    else if (PyList_CheckExact(reactions)) {
        if (PyList_Append(reactions, entry) < 0) {
            lock_exit(LOCK);
            return -1;
        }
    }
    else {
        PyObject *both = PyList_New(2);
        if (both == NULL) {
            lock_exit(LOCK);
            return -1;
        }
        Py_INCREF(reactions);
        Py_INCREF(entry);
        PyList_SET_ITEM(both, 0, reactions);
        PyList_SET_ITEM(both, 1, entry);
        store(&P(self)->reactions, both);
        Py_DECREF(both);
    }
    lock_exit(LOCK);
    return 1;
}

static PyObject *
Promise_register(PyObject *self, PyObject *entry)
{
    int registered = register_impl(self, entry);
    if (registered < 0) {
        return NULL;
    }
    return PyBool_FromLong(registered);
}

static PyObject *
call_wake_waiter(PyObject *waiter, int state, PyObject *value, PyObject *tb, PyObject *loop)
{
    PyObject *args[5] = {waiter, STATE_OBJECTS[state], value, tb, loop};
    return PyObject_Vectorcall(wake_waiter, args, 5, NULL);
}

/* Route every reaction of a promise that just settled; the lock is held.
   `*queue` and `*loop` are new references (`*queue` may be UNKNOWN), updated here. */
static int
route_reactions(PyObject *reactions, int state, PyObject *value, PyObject *tb,
                PyObject **queue, PyObject *loop)
{
    if (Py_TYPE(reactions) == PromiseType) {
        PyObject *home = OR_NONE(P(reactions)->loop);
        if (home == loop || home == Py_None) {
            if (*queue == UNKNOWN) {
                PyObject *found = PyObject_CallOneArg(queue_for, loop);
                if (found == NULL) {
                    return -1;
                }
                Py_SETREF(*queue, found);
            }
            return push_local(*queue, reactions, loop);
        }
        PyObject *args[3] = {reactions, *queue, loop};
        PyObject *result = PyObject_Vectorcall(route, args, 3, NULL);
        if (result == NULL) {
            return -1;
        }
        Py_SETREF(*queue, result);
        return 0;
    }
    if (PyList_CheckExact(reactions)) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(reactions); i++) {
            PyObject *reaction = PyList_GET_ITEM(reactions, i);
            Py_INCREF(reaction);
            PyObject *result;
            if (Py_TYPE(reaction) == PromiseType) {
                PyObject *args[3] = {reaction, *queue, loop};
                result = PyObject_Vectorcall(route, args, 3, NULL);
                if (result != NULL) {
                    Py_SETREF(*queue, result);
                    result = Py_None;
                    Py_INCREF(result);
                }
            }
            else {
                result = call_wake_waiter(reaction, state, value, tb, loop);
            }
            Py_DECREF(reaction);
            if (result == NULL) {
                return -1;
            }
            Py_DECREF(result);
        }
        return 0;
    }
    /* One waiter's future. */
    if (state == FULFILLED) {
        PyObject *its_loop = PyObject_CallMethodNoArgs(reactions, str_get_loop);
        if (its_loop == NULL) {
            return -1;
        }
        int same = its_loop == loop;
        Py_DECREF(its_loop);
        if (same) {
            PyObject *done = PyObject_CallMethodNoArgs(reactions, str_done);
            if (done == NULL) {
                return -1;
            }
            int is_done = PyObject_IsTrue(done);
            Py_DECREF(done);
            if (is_done < 0) {
                return -1;
            }
            if (!is_done) { /* else its task was cancelled */
                PyObject *result = PyObject_CallMethodOneArg(reactions, str_set_result, value);
                if (result == NULL) {
                    return -1;
                }
                Py_DECREF(result);
            }
            return 0;
        }
    }
    PyObject *result = call_wake_waiter(reactions, state, value, tb, loop);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* Promise._complete: settle if the state is `expect`, routing every reaction.
   1 settled, 0 not in state `expect`, -1 error. `queue` is borrowed. */
static int
complete_impl(PyObject *self, int state, PyObject *value, PyObject *tb, int expect,
              PyObject *queue)
{
    PyObject *loop = NULL; /* set once there are reactions to route */
    int failed = 0;
    Py_INCREF(queue);
    lock_enter(LOCK);
    if (P(self)->state != expect) {
        lock_exit(LOCK);
        Py_DECREF(queue);
        return 0;
    }
    /* The job's fields are empty by now (a runner clears them before it settles its
       promise); the outcome takes their place. */
    store(&P(self)->source_or_value, value);
    store(&P(self)->arg1_or_tb, tb);
    Py_CLEAR(P(self)->arg2_or_watch);
    /* Publish before routing (see _promise.py). */
    P(self)->state = state;
    if (state == REJECTED && P(self)->handled == UNHANDLED) {
        PyObject *result = PyObject_CallMethodOneArg(self, str_watch_rejection, value);
        if (result == NULL) {
            failed = 1;
            goto done;
        }
        Py_DECREF(result);
    }
    PyObject *reactions = OR_NONE(P(self)->reactions);
    if (reactions != Py_None) {
        Py_INCREF(reactions);
        store(&P(self)->reactions, Py_None);
        if (queue == UNKNOWN) {
            loop = running_loop();
        }
        else {
            loop = queue_attr(queue, Q_LOOP, str_loop);
        }
        if (loop == NULL) {
            Py_DECREF(reactions);
            failed = 1;
            goto done;
        }
        failed = route_reactions(reactions, state, value, tb, &queue, loop) < 0;
        Py_DECREF(reactions);
    }
done:
    lock_exit(LOCK);
    Py_DECREF(queue);
    if (loop != NULL) {
        if (loop == Py_None && !failed) {
            PyObject *result = PyObject_CallNoArgs(drain_trampoline);
            if (result == NULL) {
                failed = 1;
            }
            else {
                Py_DECREF(result);
            }
        }
        Py_DECREF(loop);
    }
    return failed ? -1 : 1;
}

static int
state_argument(PyObject *arg, int *state)
{
    long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (value < PENDING || value > REJECTED) {
        PyErr_Format(PyExc_ValueError, "not a promise state: %ld", value);
        return -1;
    }
    *state = (int)value;
    return 0;
}

static PyObject *
Promise_complete(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int state, expect;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "_complete() takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    if (state_argument(args[0], &state) < 0 || state_argument(args[3], &expect) < 0) {
        return NULL;
    }
    int settled = complete_impl(self, state, args[1], args[2], expect, args[4]);
    if (settled < 0) {
        return NULL;
    }
    return PyBool_FromLong(settled);
}

/* ------------------------------------------------------------------ then */

/* Whether `value` is of an exact type in PLAIN (never an awaitable or thenable). */
static int
is_plain(PyObject *value)
{
    PyTypeObject *type = Py_TYPE(value);
    if (type == &PyLong_Type || type == &PyUnicode_Type || value == Py_None ||
        type == &PyFloat_Type || type == &PyBool_Type) {
        return 1;
    }
    return PySet_Contains(PLAIN, (PyObject *)type);
}

static int
check_callback(PyObject *name, PyObject *callback)
{
    if (callback == Py_None || PyCallable_Check(callback)) {
        return 0;
    }
    PyObject *args[2] = {name, callback};
    PyObject *message = PyObject_Vectorcall(not_callable, args, 2, NULL);
    if (message != NULL) {
        PyErr_SetObject(argument_type_error, message);
        Py_DECREF(message);
    }
    return -1;
}

/* A promise derived from `source`, following from birth, settled by `runner(arg1, arg2)`:
   the C counterpart of _promise._derived. */
static PyObject *
derived(PyObject *loop, PyObject *runner, PyObject *source, PyObject *arg1, PyObject *arg2)
{
    PyObject *child = PromiseType->tp_alloc(PromiseType, 0);
    if (child == NULL) {
        return NULL;
    }
    /* tp_alloc zeroed the rest: value, tb and reactions read as None. */
    P(child)->state = FOLLOWING;
    store(&P(child)->loop, loop);
    store(&P(child)->runner, runner);
    store(&P(child)->source_or_value, source);
    store(&P(child)->arg1_or_tb, arg1);
    store(&P(child)->arg2_or_watch, arg2);
    return child;
}

static PyObject *
Promise_then(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *on_fulfilled = Py_None, *on_rejected = Py_None;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "then() takes at most 2 positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (nargs >= 1) {
        on_fulfilled = args[0];
    }
    if (nargs == 2) {
        on_rejected = args[1];
    }
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            PyObject **target;
            int position;
            if (PyUnicode_Compare(name, str_on_fulfilled) == 0) {
                target = &on_fulfilled;
                position = 0;
            }
            else if (PyUnicode_Compare(name, str_on_rejected) == 0) {
                target = &on_rejected;
                position = 1;
            }
            else {
                PyErr_Format(PyExc_TypeError, "then() got an unexpected keyword argument '%U'",
                             name);
                return NULL;
            }
            if (position < nargs) {
                PyErr_Format(PyExc_TypeError, "then() got multiple values for argument '%U'",
                             name);
                return NULL;
            }
            *target = args[nargs + i];
        }
    }
    if (check_callback(str_on_fulfilled, on_fulfilled) < 0 ||
        check_callback(str_on_rejected, on_rejected) < 0) {
        return NULL;
    }
    if (PromiseType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the compiled promise is not installed");
        return NULL;
    }
    PyObject *loop = running_loop();
    if (loop == NULL) {
        return NULL;
    }
    PyObject *child = derived(loop, RUN_THEN, self, on_fulfilled, on_rejected);
    if (child == NULL) {
        Py_DECREF(loop);
        return NULL;
    }
    int registered = register_impl(self, child);
    if (registered == 0) {
        PyObject *call_args[2] = {child, loop};
        PyObject *result = PyObject_Vectorcall(queue_now, call_args, 2, NULL);
        if (result == NULL) {
            registered = -1;
        }
        else {
            Py_DECREF(result);
        }
    }
    Py_DECREF(loop);
    if (registered < 0) {
        Py_DECREF(child);
        return NULL;
    }
    return child;
}

/* ------------------------------------------------------------------ running jobs */

/* The exception being raised, with its traceback attached; clears the error indicator. */
static PyObject *
take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* _run_then: run the then() job of `child` from `queue`. 0 done, -1 error. */
static int
run_then_impl(PyObject *child, PyObject *queue)
{
    /* Take the job out of the promise: a settled promise keeps no job. */
    PyObject *source = P(child)->source_or_value;
    PyObject *on_fulfilled = OR_NONE(P(child)->arg1_or_tb);
    PyObject *on_rejected = OR_NONE(P(child)->arg2_or_watch);
    if (source == NULL || Py_TYPE(source) != PromiseType || !SETTLED(source)) {
        PyErr_SetString(PyExc_RuntimeError, "a then() job ran before its promise settled");
        return -1;
    }
    Py_INCREF(on_fulfilled);
    Py_INCREF(on_rejected);
    P(child)->source_or_value = NULL; /* its reference is ours now */
    Py_CLEAR(P(child)->arg1_or_tb);
    Py_CLEAR(P(child)->arg2_or_watch);
    store(&P(child)->runner, Py_None);
    int outcome = -1;
    PyObject *value = OR_NONE(P(source)->source_or_value);
    Py_INCREF(value);
    PyObject *callback;
    if (P(source)->state == FULFILLED) {
        callback = on_fulfilled;
        if (callback == Py_None) {
            outcome = complete_impl(child, FULFILLED, value, Py_None, FOLLOWING, queue);
            goto done;
        }
    }
    else {
        callback = on_rejected;
        if (callback == Py_None) {
            PyObject *tb = OR_NONE(P(source)->arg1_or_tb);
            outcome = complete_impl(child, REJECTED, value, tb, FOLLOWING, queue);
            goto done;
        }
    }
    PyObject *result = PyObject_CallOneArg(callback, value);
    if (result == NULL) {
        PyObject *error = take_exception();
        PyObject *args[3] = {child, error, queue};
        PyObject *rejected = PyObject_Vectorcall(reject_with, args, 3, NULL);
        Py_DECREF(error);
        outcome = rejected == NULL ? -1 : 0;
        Py_XDECREF(rejected);
        goto done;
    }
    int plain = is_plain(result);
    if (plain > 0) {
        outcome = complete_impl(child, FULFILLED, result, Py_None, FOLLOWING, queue);
    }
    else if (plain == 0) {
        PyObject *args[4] = {child, result, STATE_OBJECTS[FOLLOWING], queue};
        PyObject *resolved = PyObject_VectorcallMethod(str_resolve, args, 4, NULL);
        outcome = resolved == NULL ? -1 : 0;
        Py_XDECREF(resolved);
    }
    Py_DECREF(result);
done:
    Py_DECREF(value);
    Py_DECREF(source);
    Py_DECREF(on_fulfilled);
    Py_DECREF(on_rejected);
    return outcome < 0 ? -1 : 0;
}

static PyObject *
speedups_run_then(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "run_then() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (Py_TYPE(args[0]) != PromiseType) {
        PyErr_SetString(PyExc_TypeError, "run_then() runs the job of a Promise");
        return NULL;
    }
    if (run_then_impl(args[0], args[1]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* LoopJobs.drain: run every queued job, including those queued meanwhile. */
static PyObject *
LoopJobs_drain(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *loop = weak_target(QSLOT(self, Q_REF));
    if (loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a job queue drained after its loop was collected");
        return NULL;
    }
    set_slot(self, Q_OFF[Q_LOOP], loop);
    set_slot(self, Q_OFF[Q_SCHEDULED], Py_True);
    PyObject *jobs = QSLOT(self, Q_JOBS);
    Py_INCREF(jobs);
    int failed = 0;
    for (;;) {
        Py_ssize_t pending = PyObject_Size(jobs);
        if (pending <= 0) {
            failed = pending < 0;
            break;
        }
        PyObject *job = PyObject_Vectorcall(deque_popleft, &jobs, 1, NULL);
        if (job == NULL) {
            failed = 1;
            break;
        }
        PyObject *runner = OR_NONE(P(job)->runner);
        if (runner == RUN_THEN) {
            failed = run_then_impl(job, self) < 0;
        }
        else {
            Py_INCREF(runner);
            PyObject *args[2] = {job, self};
            PyObject *result = PyObject_Vectorcall(runner, args, 2, NULL);
            Py_DECREF(runner);
            failed = result == NULL;
            Py_XDECREF(result);
        }
        Py_DECREF(job);
        if (failed) {
            break;
        }
    }
    /* finally: only an exception escaping a job leaves work behind; finish it next turn. */
    PyObject *error = failed ? take_exception() : NULL;
    Py_ssize_t left = PyObject_Size(jobs);
    int again = 0;
    if (left > 0) {
        PyObject *closed = PyObject_CallMethodNoArgs(loop, str_is_closed);
        if (closed != NULL) {
            again = PyObject_Not(closed) == 1;
            Py_DECREF(closed);
        }
        PyErr_Clear();
    }
    PyErr_Clear();
    if (again) {
        PyObject *drain = PyObject_GetAttr(self, str_drain);
        PyObject *result = drain == NULL ? NULL
                                         : PyObject_CallMethodOneArg(loop, str_call_soon, drain);
        Py_XDECREF(drain);
        if (result == NULL) {
            if (error == NULL) {
                error = take_exception();
            }
            else {
                PyErr_Clear();
            }
        }
        Py_XDECREF(result);
    }
    else {
        set_slot(self, Q_OFF[Q_SCHEDULED], Py_False);
        set_slot(self, Q_OFF[Q_LOOP], Py_None);
    }
    Py_DECREF(jobs);
    Py_DECREF(loop);
    if (error != NULL) {
#if PY_VERSION_HEX >= 0x030C0000
        PyErr_SetRaisedException(error);
#else
        PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(error)), error,
                      PyException_GetTraceback(error));
#endif
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ the types */

static PyMethodDef PromiseCore_methods[] = {
    {"then", (PyCFunction)(void (*)(void))Promise_then, METH_FASTCALL | METH_KEYWORDS,
     "Promise.then, compiled (see corral/_core/_promise.py)."},
    {"_register", (PyCFunction)Promise_register, METH_O,
     "Promise._register, compiled (see corral/_core/_promise.py)."},
    {"_complete", (PyCFunction)(void (*)(void))Promise_complete, METH_FASTCALL,
     "Promise._complete, compiled (see corral/_core/_promise.py)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PromiseCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "corral._core._promise_speedups.PromiseCore",
    .tp_doc = "The fields and hot methods of corral.Promise, which is its only subclass.",
    .tp_basicsize = sizeof(PromiseObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_new = PromiseCore_new,
    .tp_dealloc = (destructor)PromiseCore_dealloc,
    .tp_traverse = (traverseproc)PromiseCore_traverse,
    .tp_clear = (inquiry)PromiseCore_clear,
    .tp_weaklistoffset = offsetof(PromiseObject, weakreflist),
    .tp_methods = PromiseCore_methods,
    .tp_members = PromiseCore_members,
    .tp_getset = PromiseCore_getset,
};

static PyMethodDef drain_def = {
    "drain", (PyCFunction)LoopJobs_drain, METH_NOARGS,
    "LoopJobs.drain, compiled (see corral/_core/_promise_jobs.py)."};

/* ------------------------------------------------------------------ install */

static int
slot_offsets(PyTypeObject *type, const char *const *names, int count, Py_ssize_t *offsets)
{
    for (int i = 0; i < count; i++) {
        PyObject *descriptor = PyDict_GetItemString(type->tp_dict, names[i]);
        if (descriptor == NULL || !Py_IS_TYPE(descriptor, &PyMemberDescr_Type)) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ member", type->tp_name,
                         names[i]);
            return -1;
        }
        PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
        if (member->type != T_OBJECT_EX || member->flags != 0) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not a writable object slot",
                         type->tp_name, names[i]);
            return -1;
        }
        offsets[i] = member->offset;
    }
    return 0;
}

static int
take_helper(PyObject *helpers, const char *name, PyObject **target)
{
    PyObject *value = PyDict_GetItemString(helpers, name);
    if (value == NULL) {
        PyErr_Format(PyExc_KeyError, "install() needs the helper %s", name);
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(*target, value);
    return 0;
}

static PyObject *
speedups_install(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *promise_type, *queue_type, *helpers;
    if (!PyArg_ParseTuple(args, "O!O!O!:install", &PyType_Type, &promise_type, &PyType_Type,
                          &queue_type, &PyDict_Type, &helpers)) {
        return NULL;
    }
    if (((PyTypeObject *)promise_type)->tp_base != &PromiseCoreType ||
        ((PyTypeObject *)promise_type)->tp_basicsize != PromiseCoreType.tp_basicsize) {
        PyErr_SetString(PyExc_TypeError,
                        "install(): the promise class must subclass PromiseCore directly, "
                        "with no slots of its own");
        return NULL;
    }
    if (slot_offsets((PyTypeObject *)queue_type, QUEUE_SLOT_NAMES, QUEUE_SLOTS, Q_OFF) < 0) {
        return NULL;
    }
    if (take_helper(helpers, "unknown", &UNKNOWN) < 0 ||
        take_helper(helpers, "plain", &PLAIN) < 0 ||
        take_helper(helpers, "queue_now", &queue_now) < 0 ||
        take_helper(helpers, "route", &route) < 0 ||
        take_helper(helpers, "wake_waiter", &wake_waiter) < 0 ||
        take_helper(helpers, "drain_trampoline", &drain_trampoline) < 0 ||
        take_helper(helpers, "queue_for", &queue_for) < 0 ||
        take_helper(helpers, "reject_with", &reject_with) < 0 ||
        take_helper(helpers, "not_callable_message", &not_callable) < 0 ||
        take_helper(helpers, "argument_type_error", &argument_type_error) < 0) {
        return NULL;
    }
    if (!PyFrozenSet_CheckExact(PLAIN)) {
        PyErr_SetString(PyExc_TypeError, "install(): plain must be a frozenset");
        return NULL;
    }
    PyTypeObject *promise = (PyTypeObject *)promise_type;
    if (promise->tp_dictoffset != 0 ||
        promise->tp_weaklistoffset != PromiseCoreType.tp_weaklistoffset) {
        PyErr_SetString(PyExc_TypeError,
                        "install(): the promise class must have no __dict__ and no slots");
        return NULL;
    }
    if (promise->tp_finalize != NULL || promise->tp_del != NULL) {
        PyErr_SetString(PyExc_TypeError, "install(): the promise class must have no __del__");
        return NULL;
    }
    /* Promise's instances need no more than PromiseCore's traverse: subtype_traverse
       would walk the class hierarchy for each object to find nothing more, then visit
       the class itself, which this module keeps alive for good (PromiseType). */
    promise->tp_traverse = (traverseproc)PromiseCore_traverse;
    promise->tp_dealloc = (destructor)PromiseCore_dealloc;
    Py_INCREF(promise_type);
    Py_XSETREF(PromiseType, promise);
    Py_INCREF(queue_type);
    Py_XSETREF(LoopJobsType, (PyTypeObject *)queue_type);
    /* LoopJobs.drain, as a method of that Python class. */
    return PyDescr_NewMethod(LoopJobsType, &drain_def);
}

/* ------------------------------------------------------------------ the module */

static PyMethodDef run_then_def = {
    "run_then", (PyCFunction)(void (*)(void))speedups_run_then, METH_FASTCALL,
    "_run_then(child, queue), compiled: the job runner of then()."};

static PyMethodDef module_methods[] = {
    {"install", (PyCFunction)speedups_install, METH_VARARGS,
     "install(Promise, LoopJobs, helpers) -> the compiled LoopJobs.drain."},
    {"running_loop", (PyCFunction)speedups_running_loop, METH_NOARGS,
     "The event loop running in this thread, or None (asyncio._get_running_loop)."},
    {"forget_running_loop", (PyCFunction)speedups_forget_running_loop, METH_NOARGS,
     "Forget the remembered running loop (after a fork)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "corral._core._promise_speedups",
    .m_doc = "The compiled hot paths of corral.Promise; see corral/_core/_promise.py.",
    .m_size = -1,
    .m_methods = module_methods,
};

#define INTERN(var, text)                                                                  \
    do {                                                                                   \
        var = PyUnicode_InternFromString(text);                                            \
        if (var == NULL) {                                                                 \
            return NULL;                                                                   \
        }                                                                                  \
    } while (0)

PyMODINIT_FUNC
PyInit__promise_speedups(void)
{
    if (PyType_Ready(&LockType) < 0 || PyType_Ready(&PromiseCoreType) < 0) {
        return NULL;
    }
    INTERN(str_thread_id, "_thread_id");
    INTERN(str_watch_rejection, "_watch_rejection");
    INTERN(str_disarm, "disarm");
    INTERN(str_resolve, "_resolve");
    INTERN(str_get_loop, "get_loop");
    INTERN(str_done, "done");
    INTERN(str_set_result, "set_result");
    INTERN(str_schedule, "schedule");
    INTERN(str_drain, "drain");
    INTERN(str_is_closed, "is_closed");
    INTERN(str_call_soon, "call_soon");
    INTERN(str_jobs, "jobs");
    INTERN(str_loop, "loop");
    INTERN(str_scheduled, "scheduled");
    INTERN(str_on_fulfilled, "on_fulfilled");
    INTERN(str_on_rejected, "on_rejected");
    for (int i = 0; i < 4; i++) {
        STATE_OBJECTS[i] = PyLong_FromLong(i);
        if (STATE_OBJECTS[i] == NULL) {
            return NULL;
        }
    }
    PyObject *asyncio = PyImport_ImportModule("asyncio");
    if (asyncio == NULL) {
        return NULL;
    }
    get_running_loop = PyObject_GetAttrString(asyncio, "_get_running_loop");
    Py_DECREF(asyncio);
    if (get_running_loop == NULL) {
        return NULL;
    }
    PyObject *collections = PyImport_ImportModule("collections");
    if (collections == NULL) {
        return NULL;
    }
    PyObject *deque = PyObject_GetAttrString(collections, "deque");
    Py_DECREF(collections);
    if (deque == NULL) {
        return NULL;
    }
    deque_append = PyObject_GetAttrString(deque, "append");
    deque_popleft = PyObject_GetAttrString(deque, "popleft");
    Py_DECREF(deque);
    if (deque_append == NULL || deque_popleft == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    RUN_THEN = PyCFunction_NewEx(&run_then_def, module, NULL);
    LOCK = (LockObject *)PyObject_CallNoArgs((PyObject *)&LockType);
    if (RUN_THEN == NULL || LOCK == NULL ||
        PyModule_AddObjectRef(module, "Lock", (PyObject *)&LockType) < 0 ||
        PyModule_AddObjectRef(module, "PromiseCore", (PyObject *)&PromiseCoreType) < 0 ||
        PyModule_AddObjectRef(module, "LOCK", (PyObject *)LOCK) < 0 ||
        PyModule_AddObjectRef(module, "run_then", RUN_THEN) < 0 ||
        PyModule_AddStringConstant(module, "SOURCE_SHA256", CORRAL_SOURCE_SHA256) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
