/* task.h: Lua coroutines as tasks on the libuv loop, and the one place they are resumed.
 * Owns: every task (a Lua thread plus its deadline and its one pending operation), the ready
 * queue, and the deadline enforcement (a sweep for waiting tasks, a count hook for running
 * ones, re-armed so a pcall in the script cannot swallow the kill).
 *
 * The async shape (after lua-nginx-module): a C binding checks its arguments, calls
 * lc_task_op_begin with a cancel function, starts the operation, and returns
 * lc_task_op_await(). The operation's completion (a libuv or lws callback) pushes its results
 * onto lc_task_thread() and calls lc_task_op_complete(); it never runs Lua itself. The task is
 * resumed later from lc_sched's idle callback, the one resume point. */
#ifndef LC_TASK_H
#define LC_TASK_H

#include <lua.h>
#include <stdint.h>
#include <uv.h>

typedef struct lc_sched lc_sched;
typedef struct lc_task lc_task;

enum {
  LC_TASK_OK = 0,        /* the function returned; its results are on lc_task_thread() */
  LC_TASK_ERROR = 1,     /* it raised; `err` has the message and traceback */
  LC_TASK_TIMEOUT = 2,   /* its deadline passed; it was stopped */
  LC_TASK_CANCELLED = 3, /* the engine stopped it (shutdown, interrupt) */
};

/* Called once per task when it ends, before the task is freed. */
typedef void (*lc_task_done_fn)(lc_task *t, int status, const char *err, void *ud);
/* Cancels the task's pending operation so its completion never fires. */
typedef void (*lc_op_cancel_fn)(lc_task *t, void *data);

/* The scheduler of one Lua state. It stores itself in the main thread's extra space, so
 * create it before any thread. Freed by lc_sched_free, which stops (LC_TASK_CANCELLED) and
 * finishes any task still alive: its __close handlers run and `done` fires in the call. */
lc_sched *lc_sched_new(uv_loop_t *loop, lua_State *L);
void lc_sched_free(lc_sched *s);

/* A new owner id (tasks, jobs and sessions share one id space; ids are never reused). */
uint64_t lc_sched_new_id(lc_sched *s);
/* Issue ids from `base` on (never below ids already issued): a job's owners live in a range of
 * their own, so an owner id names its job. */
void lc_sched_set_id_base(lc_sched *s, uint64_t base);

/* Spawn a task running the function below `nargs` arguments on top of L's stack (both are
 * popped). timeout_ms <= 0: no deadline. The task is queued to run; `done` fires once. */
lc_task *lc_task_spawn(lc_sched *s, int nargs, int64_t timeout_ms, lc_task_done_fn done, void *ud);

/* The task running on thread L, or NULL (the main thread, a nested coroutine). */
lc_task *lc_task_current(lua_State *L);
/* The task being resumed now, whichever coroutine of it runs (a nested one included), or NULL
 * outside a resume. */
lc_task *lc_sched_running(const lc_sched *s);
/* Like lc_task_current, but raises a clear error when L is not a task's own coroutine. */
lc_task *lc_task_check(lua_State *L, const char *what);

lua_State *lc_task_thread(lc_task *t);
uint64_t lc_task_id(const lc_task *t);
void *lc_task_data(const lc_task *t);
void lc_task_set_data(lc_task *t, void *data);
int64_t lc_task_deadline(const lc_task *t); /* absolute, in loop ms; 0 if none */
int lc_task_expired(const lc_task *t);
/* Milliseconds left before the deadline (INT32_MAX without one), never below 1. */
int lc_task_remaining_ms(const lc_task *t, int cap_ms);

/* The pending operation (at most one per task). */
void lc_task_op_begin(lc_task *t, lc_op_cancel_fn cancel, void *data);
void lc_task_op_complete(lc_task *t, int nvalues);
/* Must be the binding's return expression: after a yield without a continuation, control
 * never comes back to the binding; the completion's values become its results. */
int lc_task_op_await(lua_State *L, lc_task *t);
int lc_task_op_pending(const lc_task *t);
/* Drop an operation that failed to start (nothing will complete it). */
void lc_task_op_abort(lc_task *t);

/* Sleep the running task (async). */
int lc_task_sleep(lua_State *L, lc_task *t, int ms);

/* Stop a task now (not the running one): its operation is cancelled, its to-be-closed
 * variables are closed, and `done` fires with `status` (LC_TASK_TIMEOUT/CANCELLED). */
void lc_task_kill(lc_task *t, int status, const char *why);
/* Work the engine does at the resume point, after the ready tasks ran (deferred releases,
 * cleanup passes that may call the Lua policy hook): callbacks poke, the idle callback runs
 * it, so no libuv or lws callback runs Lua itself. */
void lc_sched_on_idle(lc_sched *s, void (*fn)(void *ud), void *ud);
void lc_sched_poke(lc_sched *s);
/* Called once for a task that is being stopped (LC_TASK_TIMEOUT, LC_TASK_CANCELLED), before
 * its to-be-closed variables are closed: when the deadline hook first fires in a running
 * task (before the error unwinds through any pcall), or when lc_task_kill stops a waiting
 * one. It must not run Lua. The engine marks the task's pages bad here, so a page a
 * `<close>` variable gives back is closed rather than reused. */
void lc_sched_on_stop(lc_sched *s, void (*fn)(void *ud, lc_task *t), void *ud);

/* The sandbox's instruction budget: a task that runs more than n Lua instructions (in any
 * coroutine it resumes) raises "budget 'instructions' exceeded", re-armed at every instruction
 * like the deadline so a pcall cannot swallow it; code outside tasks (the script's load, the
 * navigation guard, the policy hook) gets n afresh at each resume point. n <= 0: none. */
void lc_sched_set_instruction_budget(lc_sched *s, int64_t n);
/* Whether code outside any task ran past the budget since it was set. */
int lc_sched_budget_hit(const lc_sched *s);
/* Put the count hook on L (the main thread): deadlines, signals and the budget reach the code
 * that runs outside tasks too. */
void lc_sched_arm(lc_sched *s, lua_State *L);

/* Log lines written at this scheduler's resume point carry `name` (NULL: none). */
void lc_sched_set_log_tag(lc_sched *s, const char *name);

/* Stop every task. */
void lc_sched_kill_all(lc_sched *s, const char *why);
int lc_sched_count(const lc_sched *s);

#endif
