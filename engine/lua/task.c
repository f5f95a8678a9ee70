/* task.c: tasks, the ready queue, deadlines, and the one resume point (see task.h). */
#include "task.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interrupt.h"
#include "log.h"

#define SCHED_SWEEP_MS 25
#define HOOK_COUNT 1000

enum { KIND_SCHED = 0x5c4ed, KIND_TASK = 0x7a5c };
enum { T_READY, T_WAITING, T_RUNNING, T_DONE };

/* The first member of both structs, so a thread's extra space says which it points to. */
typedef struct tag {
  int kind;
  lc_sched *sched;
} tag;

struct lc_task {
  tag tag;
  lc_task *next, *prev; /* all tasks */
  lc_task *rnext;       /* ready queue */
  uint64_t id;
  lua_State *co;
  int co_ref;
  int state;
  int nargs;        /* values on co's stack to resume with */
  int64_t deadline; /* loop ms, 0: none */
  int timed_out;
  int stop_told;   /* the stop callback ran for it */
  int interrupted; /* stopped by the hook because a signal was pending */
  int64_t insns;   /* Lua instructions run for this task (counted only with a budget) */
  int kill_status;  /* lc_task_kill stopped it: finished at the resume point with this status */
  char kill_why[96];
  lc_task_done_fn done;
  void *done_ud;
  void *data;
  struct {
    int active, completed, nvalues;
    lc_op_cancel_fn cancel;
    void *data;
  } op;
  uv_timer_t *sleep_timer;
};

struct lc_sched {
  tag tag;
  uv_loop_t *loop;
  lua_State *L;
  lc_task all; /* sentinel */
  lc_task *rhead, *rtail;
  lc_task *running;
  char log_tag[32]; /* what log lines written at this resume point carry, "" for nothing */
  int count;
  uint64_t next_id;
  uv_idle_t idle;
  uv_timer_t sweep;
  int closing; /* handles still closing in lc_sched_free */
  void (*idle_fn)(void *ud);
  void *idle_ud;
  void (*stop_fn)(void *ud, lc_task *t);
  void *stop_ud;
  int poked;
  int64_t insn_budget; /* Lua instructions a task may run (0: no budget) */
  int64_t free_insns;  /* instructions run outside any task since the last resume point */
  int budget_hit;      /* code outside a task ran past the budget */
};

static void idle_cb(uv_idle_t *h);

static tag *thread_tag(lua_State *L) { return *(tag **)lua_getextraspace(L); }

static void sched_wake(lc_sched *s) {
  if (!uv_is_active((uv_handle_t *)&s->idle)) uv_idle_start(&s->idle, idle_cb);
}

static void make_ready(lc_task *t, int nargs) {
  lc_sched *s = t->tag.sched;
  t->state = T_READY;
  t->nargs = nargs;
  t->rnext = NULL;
  if (s->rtail)
    s->rtail->rnext = t;
  else
    s->rhead = t;
  s->rtail = t;
  sched_wake(s);
}

static void unqueue(lc_task *t) {
  lc_sched *s = t->tag.sched;
  lc_task **pp = &s->rhead, *prev = NULL;
  while (*pp) {
    if (*pp == t) {
      *pp = t->rnext;
      if (s->rtail == t) s->rtail = prev;
      return;
    }
    prev = *pp;
    pp = &(*pp)->rnext;
  }
}

static void close_free(uv_handle_t *h) { free(h); }

/* The task is being stopped (its deadline passed, or it is killed): tell the engine once,
 * before any of its to-be-closed variables or pcall'd __close metamethods run. */
static void tell_stop(lc_task *t) {
  lc_sched *s = t->tag.sched;
  if (t->stop_told) return;
  t->stop_told = 1;
  if (s->stop_fn) s->stop_fn(s->stop_ud, t);
}

/* The hook every thread that runs job code carries (task threads, and every coroutine:
 * coroutine.create and coroutine.wrap are replaced so that a coroutine made anywhere, even when
 * the script loads, gets it). It runs every HOOK_COUNT instructions and checks the task being
 * resumed, whichever thread is actually running: once its deadline passed, or while a signal
 * waits for the loop, it raises, re-armed to every instruction on this thread and on the task's
 * own, so a pcall in the script cannot swallow the stop. */
static void deadline_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  tag *tg = thread_tag(L);
  if (!tg) return;
  lc_sched *s = tg->sched;
  lc_task *t = s->running;
  int interrupt = lc_interrupt_pending();
  int over = 0;
  if (s->insn_budget > 0 && !interrupt) {
    /* The hook fires every `count` instructions of this thread: charge them to the task being
     * resumed (whichever coroutine runs them), or to the code outside tasks. */
    int64_t *used = t ? &t->insns : &s->free_insns;
    *used += lua_gethookcount(L);
    over = *used > s->insn_budget;
  }
  if (over) {
    /* Like the deadline: re-armed at every instruction, so a pcall cannot swallow it. */
    lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 1);
    if (t && L != t->co) lua_sethook(t->co, deadline_hook, LUA_MASKCOUNT, 1);
    if (t)
      tell_stop(t);
    else
      s->budget_hit = 1;
    luaL_error(L, "budget 'instructions' exceeded: more than %I Lua instructions %s",
               (lua_Integer)s->insn_budget, t ? "in this request" : "outside a request");
  }
  if (!interrupt) {
    int expired = 0;
    if (t && t->deadline) {
      uv_update_time(s->loop);
      expired = (int64_t)uv_now(s->loop) >= t->deadline;
    }
    if (!expired) {
      /* A thread left armed at every instruction by an earlier stop goes back to the count. */
      if (lua_gethookcount(L) != HOOK_COUNT)
        lua_sethook(L, deadline_hook, LUA_MASKCOUNT, HOOK_COUNT);
      return;
    }
  }
  lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 1);
  if (t && L != t->co) lua_sethook(t->co, deadline_hook, LUA_MASKCOUNT, 1);
  if (t) tell_stop(t); /* before the error unwinds through a pcall that closes variables */
  if (interrupt) {
    if (t) t->interrupted = 1;
    luaL_error(L, "interrupted (a signal stops the job)");
  }
  t->timed_out = 1;
  luaL_error(L, "request deadline passed (handler still running)");
}

/* coroutine.create, with the hook on the new thread. */
static int l_co_create(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_sethook(co, deadline_hook, LUA_MASKCOUNT, HOOK_COUNT);
  return 1;
}

/* coroutine.wrap: Lua's own (upvalue 1), then the hook on the thread it wraps. */
static int l_co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 1, 1); /* stack: wrapper */
  if (!lua_getupvalue(L, -1, 1) || !lua_isthread(L, -1))
    return luaL_error(L, "engine bug: coroutine.wrap does not hold its thread as expected");
  lua_sethook(lua_tothread(L, -1), deadline_hook, LUA_MASKCOUNT, HOOK_COUNT);
  lua_pop(L, 1);
  return 1;
}

static void replace_coroutine_lib(lua_State *L) {
  if (lua_getglobal(L, "coroutine") != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_pushcfunction(L, l_co_create);
  lua_setfield(L, -2, "create");
  lua_getfield(L, -1, "wrap");
  lua_pushcclosure(L, l_co_wrap, 1);
  lua_setfield(L, -2, "wrap");
  lua_pop(L, 1);
}

static void task_free(lc_task *t) {
  lc_sched *s = t->tag.sched;
  t->next->prev = t->prev;
  t->prev->next = t->next;
  s->count--;
  if (t->sleep_timer) {
    uv_close((uv_handle_t *)t->sleep_timer, close_free);
    t->sleep_timer = NULL;
  }
  luaL_unref(s->L, LUA_REGISTRYINDEX, t->co_ref);
  free(t);
}

/* End a task: close its to-be-closed variables, report, free. */
#define CLOSE_GRACE_MS 1000

static void task_finish(lc_task *t, int status, const char *err) {
  lc_sched *s = t->tag.sched;
  if (t->op.active) {
    /* Backstop: no completion may reach a finished task. */
    t->op.active = 0;
    if (t->op.cancel) t->op.cancel(t, t->op.data);
  }
  t->state = T_DONE;
  if (status == LC_TASK_TIMEOUT || status == LC_TASK_CANCELLED) tell_stop(t);
  if (status != LC_TASK_OK) {
    /* Pending __close metamethods run now, under a deadline of their own: a slow or looping
       one is stopped after CLOSE_GRACE_MS instead of blocking the loop. */
    uv_update_time(s->loop);
    t->deadline = (int64_t)uv_now(s->loop) + CLOSE_GRACE_MS;
    lua_sethook(t->co, deadline_hook, LUA_MASKCOUNT, HOOK_COUNT);
    lc_task *was = s->running;
    s->running = t;
    /* A thread that died of an error gives that error back from lua_resetthread even when its
     * variables closed cleanly: keep it, to warn only about an error a __close raised. */
    int died = lua_status(t->co) != LUA_OK && lua_status(t->co) != LUA_YIELD;
    if (died && lua_checkstack(s->L, 2)) {
      lua_pushvalue(t->co, -1);
      lua_xmove(t->co, s->L, 1);
    } else {
      died = 0;
    }
    int st = lua_resetthread(t->co);
    s->running = was;
    lua_sethook(t->co, NULL, 0, 0);
    int same = 0;
    if (died) {
      if (st != LUA_OK) {
        lua_pushvalue(t->co, -1);
        lua_xmove(t->co, s->L, 1);
        same = lua_rawequal(s->L, -1, -2);
        lua_pop(s->L, 1);
      }
      lua_pop(s->L, 1);
    }
    if (st != LUA_OK && !same)
      lc_warn("closing the variables of task %llu: %s", (unsigned long long)t->id,
              lua_tostring(t->co, -1));
  }
  if (t->done) t->done(t, status, err, t->done_ud);
  task_free(t);
}

static void resume_one(lc_sched *s, lc_task *t) {
  int nres = 0;
  t->state = T_RUNNING;
  s->running = t;
  lua_sethook(t->co, deadline_hook, LUA_MASKCOUNT, HOOK_COUNT);
  int st = lua_resume(t->co, s->L, t->nargs, &nres);
  s->running = NULL;
  if (st == LUA_YIELD) {
    if (t->op.active) {
      lua_pop(t->co, nres);
      t->state = T_WAITING;
    } else {
      /* a bare coroutine.yield(): let others run, then continue */
      lua_pop(t->co, nres);
      make_ready(t, 0);
    }
    return;
  }
  if (st == LUA_OK) {
    task_finish(t, LC_TASK_OK, NULL);
    return;
  }
  const char *msg = lua_tostring(t->co, -1);
  if (!msg) msg = luaL_typename(t->co, -1);
  luaL_traceback(s->L, t->co, msg, 0);
  const char *full = lua_tostring(s->L, -1);
  char *copy = strdup(full ? full : msg);
  lua_pop(s->L, 1);
  int status = t->interrupted ? LC_TASK_CANCELLED : t->timed_out ? LC_TASK_TIMEOUT : LC_TASK_ERROR;
  task_finish(t, status, copy ? copy : "error");
  free(copy);
}

/* The one resume point. */
static void idle_cb(uv_idle_t *h) {
  lc_sched *s = h->data;
  const char *was_tag = lc_log_set_tag(s->log_tag[0] ? s->log_tag : NULL);
  int budget = 256; /* yield to I/O now and then even when many tasks are ready */
  s->free_insns = 0; /* code outside tasks gets the instruction budget afresh at each resume point */
  /* A pending signal: back to the loop, which takes it before anything else runs. */
  while (s->rhead && budget-- > 0 && !lc_interrupt_pending()) {
    lc_task *t = s->rhead;
    s->rhead = t->rnext;
    if (!s->rhead) s->rtail = NULL;
    if (t->kill_status)
      task_finish(t, t->kill_status, t->kill_why); /* its __close handlers run here */
    else
      resume_one(s, t);
  }
  if (s->poked && s->idle_fn && !lc_interrupt_pending()) {
    s->poked = 0;
    s->idle_fn(s->idle_ud);
  }
  if (!s->rhead && !s->poked) uv_idle_stop(&s->idle);
  lc_log_set_tag(was_tag);
}

void lc_sched_set_instruction_budget(lc_sched *s, int64_t n) {
  s->insn_budget = n > 0 ? n : 0;
  s->free_insns = 0;
  s->budget_hit = 0;
}

int lc_sched_budget_hit(const lc_sched *s) { return s->budget_hit; }

void lc_sched_arm(lc_sched *s, lua_State *L) {
  (void)s;
  lua_sethook(L, deadline_hook, LUA_MASKCOUNT, HOOK_COUNT);
}

void lc_sched_set_log_tag(lc_sched *s, const char *name) {
  snprintf(s->log_tag, sizeof s->log_tag, "%s", name ? name : "");
}

void lc_sched_on_idle(lc_sched *s, void (*fn)(void *ud), void *ud) {
  s->idle_fn = fn;
  s->idle_ud = ud;
}

void lc_sched_on_stop(lc_sched *s, void (*fn)(void *ud, lc_task *t), void *ud) {
  s->stop_fn = fn;
  s->stop_ud = ud;
}

void lc_sched_poke(lc_sched *s) {
  s->poked = 1;
  sched_wake(s);
}

static void sweep_cb(uv_timer_t *h) {
  lc_sched *s = h->data;
  int64_t now = (int64_t)uv_now(s->loop);
  for (;;) {
    lc_task *hit = NULL;
    for (lc_task *t = s->all.next; t != &s->all; t = t->next) {
      if (t->deadline && now >= t->deadline && !t->kill_status &&
          (t->state == T_WAITING || t->state == T_READY)) {
        hit = t;
        break;
      }
    }
    if (!hit) break;
    lc_task_kill(hit, LC_TASK_TIMEOUT, "request deadline passed");
  }
}

lc_sched *lc_sched_new(uv_loop_t *loop, lua_State *L) {
  lc_sched *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->tag.kind = KIND_SCHED;
  s->tag.sched = s;
  s->loop = loop;
  s->L = L;
  s->next_id = 1;
  s->all.next = s->all.prev = &s->all;
  uv_idle_init(loop, &s->idle);
  s->idle.data = s;
  uv_timer_init(loop, &s->sweep);
  s->sweep.data = s;
  uv_unref((uv_handle_t *)&s->sweep);
  uv_timer_start(&s->sweep, sweep_cb, SCHED_SWEEP_MS, SCHED_SWEEP_MS);
  *(tag **)lua_getextraspace(L) = &s->tag;
  replace_coroutine_lib(L);
  return s;
}

/* Both handles live inside the struct: free it after the second close callback. */
static void sched_closed(uv_handle_t *h) {
  lc_sched *s = h->data;
  if (--s->closing == 0) free(s);
}

void lc_sched_free(lc_sched *s) {
  if (!s) return;
  /* Tasks still alive are stopped and, since the resume point goes with the scheduler,
   * finished here: their __close handlers run and `done` fires, so none is leaked with its
   * thread, its registry reference and its sleep timer (which would keep the loop open). */
  lc_sched_kill_all(s, "shutting down");
  while (s->rhead) {
    lc_task *t = s->rhead;
    s->rhead = t->rnext;
    if (!s->rhead) s->rtail = NULL;
    if (t->kill_status)
      task_finish(t, t->kill_status, t->kill_why);
    else /* spawned by a `done` callback just now */
      lc_task_kill(t, LC_TASK_CANCELLED, "shutting down");
  }
  *(tag **)lua_getextraspace(s->L) = NULL;
  s->closing = 2;
  uv_close((uv_handle_t *)&s->idle, sched_closed);
  uv_close((uv_handle_t *)&s->sweep, sched_closed);
}

uint64_t lc_sched_new_id(lc_sched *s) { return s->next_id++; }

void lc_sched_set_id_base(lc_sched *s, uint64_t base) {
  if (base > s->next_id) s->next_id = base;
}

lc_task *lc_task_spawn(lc_sched *s, int nargs, int64_t timeout_ms, lc_task_done_fn done, void *ud) {
  lua_State *L = s->L;
  lc_task *t = calloc(1, sizeof *t);
  if (!t) {
    lua_pop(L, nargs + 1);
    return NULL;
  }
  t->tag.kind = KIND_TASK;
  t->tag.sched = s;
  t->id = s->next_id++;
  t->done = done;
  t->done_ud = ud;
  t->co = lua_newthread(L); /* stack: fn args... co */
  t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  *(tag **)lua_getextraspace(t->co) = &t->tag;
  lua_xmove(L, t->co, nargs + 1);
  if (timeout_ms > 0) t->deadline = (int64_t)uv_now(s->loop) + timeout_ms;
  t->next = &s->all;
  t->prev = s->all.prev;
  s->all.prev->next = t;
  s->all.prev = t;
  s->count++;
  make_ready(t, nargs);
  return t;
}

lc_task *lc_task_current(lua_State *L) {
  tag *tg = thread_tag(L);
  if (!tg || tg->kind != KIND_TASK) return NULL;
  return (lc_task *)tg;
}

lc_task *lc_task_check(lua_State *L, const char *what) {
  lc_task *t = lc_task_current(L);
  if (!t)
    luaL_error(L,
               "%s must be called from a job handler's own coroutine (not the main chunk, "
               "a policy hook, or a nested coroutine)",
               what);
  /* Checked before anything starts: a yield that Lua refuses would leave the operation
   * registered and its completion aimed at a task that moved on. */
  if (!lua_isyieldable(L))
    luaL_error(L,
               "%s cannot be called inside a metamethod, a sort or gsub callback, or an "
               "error handler",
               what);
  return t;
}

lua_State *lc_task_thread(lc_task *t) { return t->co; }
uint64_t lc_task_id(const lc_task *t) { return t->id; }
void *lc_task_data(const lc_task *t) { return t->data; }
void lc_task_set_data(lc_task *t, void *data) { t->data = data; }
int64_t lc_task_deadline(const lc_task *t) { return t->deadline; }

int lc_task_expired(const lc_task *t) {
  return t->deadline && (int64_t)uv_now(t->tag.sched->loop) >= t->deadline;
}

int lc_task_remaining_ms(const lc_task *t, int cap_ms) {
  int64_t left = INT32_MAX;
  if (t->deadline) left = t->deadline - (int64_t)uv_now(t->tag.sched->loop);
  if (cap_ms > 0 && left > cap_ms) left = cap_ms;
  return left < 1 ? 1 : (int)left;
}

void lc_task_op_begin(lc_task *t, lc_op_cancel_fn cancel, void *data) {
  if (t->op.active) {
    /* Cannot happen through lc_task_check; if it ever does, never let two completions race. */
    lc_error("engine bug: task %llu started an operation while one was pending",
             (unsigned long long)t->id);
    if (t->op.cancel) t->op.cancel(t, t->op.data);
  }
  t->op.active = 1;
  t->op.completed = 0;
  t->op.nvalues = 0;
  t->op.cancel = cancel;
  t->op.data = data;
}

void lc_task_op_complete(lc_task *t, int nvalues) {
  if (!t->op.active) {
    lua_pop(t->co, nvalues); /* a stale completion: nobody waits */
    return;
  }
  t->op.active = 0;
  t->op.cancel = NULL;
  if (t->state == T_WAITING) {
    make_ready(t, nvalues);
  } else {
    /* completed before the binding yielded */
    t->op.completed = 1;
    t->op.nvalues = nvalues;
  }
}

int lc_task_op_await(lua_State *L, lc_task *t) {
  if (t->op.completed) {
    t->op.completed = 0;
    return t->op.nvalues;
  }
  return lua_yield(L, 0);
}

int lc_task_op_pending(const lc_task *t) { return t->op.active; }

void lc_task_op_abort(lc_task *t) {
  t->op.active = 0;
  t->op.completed = 0;
  t->op.cancel = NULL;
}

static void sleep_cb(uv_timer_t *h) {
  lc_task *t = h->data;
  lua_pushboolean(t->co, 1);
  lc_task_op_complete(t, 1);
}

static void sleep_cancel(lc_task *t, void *data) {
  (void)data;
  if (t->sleep_timer) uv_timer_stop(t->sleep_timer);
}

int lc_task_sleep(lua_State *L, lc_task *t, int ms) {
  if (!t->sleep_timer) {
    t->sleep_timer = malloc(sizeof *t->sleep_timer);
    if (!t->sleep_timer) return luaL_error(L, "out of memory");
    uv_timer_init(t->tag.sched->loop, t->sleep_timer);
    t->sleep_timer->data = t;
  }
  lc_task_op_begin(t, sleep_cancel, NULL);
  uv_timer_start(t->sleep_timer, sleep_cb, (uint64_t)(ms < 0 ? 0 : ms), 0);
  return lc_task_op_await(L, t);
}

/* Stopping a task runs Lua (its to-be-closed variables, pending __close handlers), so it is
 * finished at the resume point, never here: a kill comes from timers, signals and browser
 * callbacks. Here its operation is cancelled (no completion can reach it any more), the stop
 * callback runs (no Lua), and it is queued. */
void lc_task_kill(lc_task *t, int status, const char *why) {
  if (t->state == T_DONE || t->state == T_RUNNING || t->kill_status) return;
  if (t->state == T_READY) unqueue(t);
  if (t->op.active) {
    t->op.active = 0;
    if (t->op.cancel) t->op.cancel(t, t->op.data);
    t->op.cancel = NULL;
  }
  if (status == LC_TASK_TIMEOUT) t->timed_out = 1;
  t->kill_status = status;
  snprintf(t->kill_why, sizeof t->kill_why, "%s", why ? why : "stopped");
  tell_stop(t);
  make_ready(t, 0);
}

void lc_sched_kill_all(lc_sched *s, const char *why) {
  for (;;) {
    lc_task *hit = NULL;
    for (lc_task *t = s->all.next; t != &s->all; t = t->next)
      if (t->state != T_DONE && t->state != T_RUNNING && !t->kill_status) {
        hit = t;
        break;
      }
    if (!hit) return;
    lc_task_kill(hit, LC_TASK_CANCELLED, why);
  }
}

int lc_sched_count(const lc_sched *s) { return s->count; }

lc_task *lc_sched_running(const lc_sched *s) { return s ? s->running : NULL; }
