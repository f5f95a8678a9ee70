/* test_task.c: unit tests for engine/lua/task.c (Lua coroutines as tasks on a libuv loop).
 *
 * Each test builds a real loop and Lua state (fx_open), registers a few async bindings the way
 * the engine's are written (lc_task_check, lc_task_op_begin with a cancel function,
 * lc_task_op_await), runs the loop until what it waits for happened, and ends with fx_close:
 * the scheduler freed, Lua closed, and uv_loop_close returning 0 (no handle left behind). */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "task.h"
#include "test.h"

/* ---------------------------------------------------------------- the fixture */

/* One test's pending operation: begun by wait_op() in Lua, completed by the test (or by its
 * timer), cancelled through its cancel function. */
typedef struct fake_op {
  lc_task *task; /* the task waiting on it; NULL once completed or cancelled */
  int begun, cancels, completions, late_completions;
  uv_timer_t timer; /* wait_op(ms): completes the op after ms, unless cancelled first */
} fake_op;

typedef struct fx {
  uv_loop_t loop;
  lua_State *L;
  lc_sched *s;
  uv_timer_t guard; /* run_until's clock */
  fake_op op;
  int stops;           /* on_stop calls */
  uint64_t stopped_id; /* the last task on_stop saw */
  char log[64];        /* note() and the idle function append here */
  int idle_calls;
} fx;

static fx *the_fx; /* for the Lua bindings */

typedef struct done_rec {
  int calls, status, nres;
  char err[2048];
  lua_Integer ints[4];
  char str[512];
  uint64_t id;
  int stops_at_done; /* fx.stops when done fired */
} done_rec;

static void on_done(lc_task *t, int status, const char *err, void *ud) {
  done_rec *d = ud;
  d->calls++;
  d->status = status;
  d->id = lc_task_id(t);
  d->stops_at_done = the_fx->stops;
  snprintf(d->err, sizeof d->err, "%s", err ? err : "");
  if (status == LC_TASK_OK) {
    lua_State *co = lc_task_thread(t);
    d->nres = lua_gettop(co);
    for (int i = 1; i <= d->nres && i <= 4; i++) {
      if (lua_type(co, i) == LUA_TSTRING)
        snprintf(d->str, sizeof d->str, "%s", lua_tostring(co, i));
      else
        d->ints[i - 1] = lua_tointeger(co, i);
    }
  }
}

static void op_cancel(lc_task *t, void *data) {
  fake_op *op = data;
  CHECK(op->task == t);
  op->cancels++;
  op->task = NULL;
  uv_timer_stop(&op->timer);
}

static void op_timer_cb(uv_timer_t *h) {
  fake_op *op = h->data;
  if (!op->task) {
    op->late_completions++; /* would have reached a task that moved on */
    return;
  }
  lc_task *t = op->task;
  op->task = NULL;
  op->completions++;
  lua_pushliteral(lc_task_thread(t), "late");
  lc_task_op_complete(t, 1);
}

/* wait_op([ms]) -> the values the completion pushed (async). */
static int l_wait_op(lua_State *L) {
  lc_task *t = lc_task_check(L, "wait_op");
  lua_Integer ms = luaL_optinteger(L, 1, 0);
  fake_op *op = &the_fx->op;
  op->task = t;
  op->begun++;
  lc_task_op_begin(t, op_cancel, op);
  if (ms > 0) uv_timer_start(&op->timer, op_timer_cb, (uint64_t)ms, 0);
  return lc_task_op_await(L, t);
}

/* sync_op(v) -> v: an operation that completes before the binding yields. */
static int l_sync_op(lua_State *L) {
  lc_task *t = lc_task_check(L, "sync_op");
  lua_Integer v = luaL_checkinteger(L, 1);
  lc_task_op_begin(t, op_cancel, &the_fx->op);
  lua_pushinteger(L, v);
  lc_task_op_complete(t, 1);
  return lc_task_op_await(L, t);
}

/* sleep(ms) -> true (async). */
static int l_sleep(lua_State *L) {
  lc_task *t = lc_task_check(L, "sleep");
  return lc_task_sleep(L, t, (int)luaL_checkinteger(L, 1));
}

/* note(s): appends s to the fixture's log. */
static int l_note(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  size_t n = strlen(the_fx->log);
  snprintf(the_fx->log + n, sizeof the_fx->log - n, "%s", s);
  return 0;
}

/* stops() -> how many times on_stop ran so far. */
static int l_stops(lua_State *L) {
  lua_pushinteger(L, the_fx->stops);
  return 1;
}

static void on_stop(void *ud, lc_task *t) {
  fx *f = ud;
  f->stops++;
  f->stopped_id = lc_task_id(t);
}

static void on_idle(void *ud) {
  fx *f = ud;
  f->idle_calls++;
  size_t n = strlen(f->log);
  snprintf(f->log + n, sizeof f->log - n, "I");
}

static void fx_open(fx *f) {
  memset(f, 0, sizeof *f);
  the_fx = f;
  CHECK_INT(uv_loop_init(&f->loop), 0);
  uv_timer_init(&f->loop, &f->guard);
  uv_timer_init(&f->loop, &f->op.timer);
  f->op.timer.data = &f->op;
  f->L = luaL_newstate();
  luaL_openlibs(f->L);
  f->s = lc_sched_new(&f->loop, f->L);
  lc_sched_on_stop(f->s, on_stop, f);
  lua_register(f->L, "wait_op", l_wait_op);
  lua_register(f->L, "sync_op", l_sync_op);
  lua_register(f->L, "sleep", l_sleep);
  lua_register(f->L, "note", l_note);
  lua_register(f->L, "stops", l_stops);
}

/* Frees everything; returns uv_loop_close's answer (0: nothing left open). */
static int fx_close(fx *f) {
  lc_sched_free(f->s);
  uv_close((uv_handle_t *)&f->guard, NULL);
  uv_close((uv_handle_t *)&f->op.timer, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* the close callbacks */
  lua_close(f->L);
  the_fx = NULL;
  return uv_loop_close(&f->loop);
}

typedef struct until_ctx {
  int (*pred)(fx *f, void *arg);
  void *arg;
  fx *f;
  uint64_t deadline;
  int met;
} until_ctx;

static void guard_cb(uv_timer_t *h) {
  until_ctx *c = h->data;
  if (c->pred(c->f, c->arg)) c->met = 1;
  if (c->met || uv_now(h->loop) >= c->deadline) uv_stop(h->loop);
}

/* Runs the loop until pred holds (checked every millisecond) or max_ms passed; returns 1 if
 * it held. */
static int run_until(fx *f, int (*pred)(fx *f, void *arg), void *arg, int max_ms) {
  until_ctx c = {pred, arg, f, uv_now(&f->loop) + (uint64_t)max_ms, 0};
  if (pred(f, arg)) return 1;
  f->guard.data = &c;
  uv_timer_start(&f->guard, guard_cb, 1, 1);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&f->guard);
  return c.met || pred(f, arg);
}

static int is_done(fx *f, void *arg) {
  (void)f;
  return ((done_rec *)arg)->calls > 0;
}

static int never(fx *f, void *arg) {
  (void)f;
  (void)arg;
  return 0;
}

/* Runs the loop for ms whatever happens. */
static void run_for(fx *f, int ms) { run_until(f, never, NULL, ms); }

static lc_task *spawn(fx *f, const char *code, int64_t timeout_ms, done_rec *d) {
  if (luaL_loadstring(f->L, code) != LUA_OK) {
    fprintf(stderr, "  cannot load: %s\n", lua_tostring(f->L, -1));
    lua_pop(f->L, 1);
    CHECK(0);
    return NULL;
  }
  return lc_task_spawn(f->s, 0, timeout_ms, on_done, d);
}

/* ---------------------------------------------------------------- tests */

TEST(spawn_and_return) {
  fx f;
  fx_open(&f);
  done_rec d = {0}, d2 = {0};
  lua_settop(f.L, 0);
  CHECK(luaL_loadstring(f.L, "local a, b = ... return a + b, 'two', 3") == LUA_OK);
  lua_pushinteger(f.L, 40);
  lua_pushinteger(f.L, 2);
  lc_task *t = lc_task_spawn(f.s, 2, 0, on_done, &d);
  CHECK(t != NULL);
  CHECK_INT(lua_gettop(f.L), 0); /* the function and its arguments were taken */
  CHECK_INT(lc_sched_count(f.s), 1);
  CHECK_INT(d.calls, 0); /* queued, not run inside spawn */
  uint64_t id = lc_task_id(t);
  CHECK(id > 0);
  CHECK(lc_task_deadline(t) == 0);
  CHECK_INT(lc_task_remaining_ms(t, 0), INT32_MAX);
  CHECK_INT(lc_task_remaining_ms(t, 250), 250);
  CHECK_INT(lc_task_expired(t), 0);
  lc_task *t2 = spawn(&f, "return", 1000, &d2);
  uint64_t id2 = lc_task_id(t2);
  CHECK(id2 > id);
  CHECK(lc_task_deadline(t2) >= (int64_t)uv_now(&f.loop) + 1000);
  CHECK(lc_task_remaining_ms(t2, 0) > 900 && lc_task_remaining_ms(t2, 0) <= 1000);
  CHECK_INT(lc_sched_count(f.s), 2);
  CHECK(lc_task_current(f.L) == NULL); /* the main thread is no task */
  CHECK(run_until(&f, is_done, &d2, 2000));
  CHECK_INT(d.calls, 1);
  CHECK_INT(d.status, LC_TASK_OK);
  CHECK_INT(d.nres, 3);
  CHECK_INT(d.ints[0], 42);
  CHECK_STR(d.str, "two");
  CHECK_INT(d.ints[2], 3);
  CHECK(d.id == id);
  CHECK_INT(d2.status, LC_TASK_OK);
  CHECK_INT(d2.nres, 0);
  CHECK_INT(lc_sched_count(f.s), 0);
  run_for(&f, 30);
  CHECK_INT(d.calls, 1); /* once */
  CHECK_INT(d2.calls, 1);
  CHECK_INT(f.stops, 0); /* a task that ends by itself is not stopped */
  /* Ids: one space for tasks and other owners, never reused, and a base only moves up. */
  uint64_t o1 = lc_sched_new_id(f.s), o2 = lc_sched_new_id(f.s);
  CHECK(o1 > id2 && o2 == o1 + 1);
  lc_sched_set_id_base(f.s, (uint64_t)1 << 40);
  CHECK(lc_sched_new_id(f.s) == (uint64_t)1 << 40);
  lc_sched_set_id_base(f.s, 5);
  CHECK(lc_sched_new_id(f.s) == ((uint64_t)1 << 40) + 1);
  CHECK_INT(fx_close(&f), 0);
}

TEST(error_with_traceback) {
  fx f;
  fx_open(&f);
  done_rec d = {0};
  spawn(&f, "local function inner() error('boom') end\ninner()\nreturn 1", 0, &d);
  CHECK(run_until(&f, is_done, &d, 2000));
  CHECK_INT(d.calls, 1);
  CHECK_INT(d.status, LC_TASK_ERROR);
  CHECK(strstr(d.err, ":1: boom") != NULL);
  CHECK(strstr(d.err, "stack traceback:") != NULL);
  CHECK(strstr(d.err, "inner") != NULL);
  CHECK_INT(f.stops, 0);
  CHECK_INT(lc_sched_count(f.s), 0);
  /* An error object that is not a string is named by its type. */
  done_rec d2 = {0};
  spawn(&f, "error({})", 0, &d2);
  CHECK(run_until(&f, is_done, &d2, 2000));
  CHECK_INT(d2.status, LC_TASK_ERROR);
  CHECK(strstr(d2.err, "table") != NULL);
  CHECK_INT(fx_close(&f), 0);
}

TEST(sleep_and_yield) {
  fx f;
  fx_open(&f);
  done_rec d = {0}, y = {0};
  uint64_t t0 = uv_now(&f.loop);
  spawn(&f, "local r = sleep(40) note('s') return r and 1 or 0", 0, &d);
  /* A bare coroutine.yield() lets others run and continues. */
  spawn(&f, "note('a') coroutine.yield() note('b') return 7", 0, &y);
  CHECK(run_until(&f, is_done, &d, 2000));
  CHECK(uv_now(&f.loop) - t0 >= 39);
  CHECK_INT(d.status, LC_TASK_OK);
  CHECK_INT(d.ints[0], 1); /* sleep returned true */
  CHECK_INT(y.status, LC_TASK_OK);
  CHECK_INT(y.ints[0], 7);
  CHECK_STR(f.log, "abs");
  CHECK_INT(lc_sched_count(f.s), 0);
  CHECK_INT(fx_close(&f), 0);
}

TEST(op_complete_resumes_with_values) {
  fx f;
  fx_open(&f);
  done_rec d = {0};
  lc_task *t = spawn(&f, "local a, b = wait_op() local c = sync_op(5) return a, b, c", 0, &d);
  run_for(&f, 20);
  CHECK_INT(f.op.begun, 1);
  CHECK(f.op.task == t);
  CHECK_INT(lc_task_op_pending(t), 1);
  CHECK_INT(d.calls, 0);
  lua_State *co = lc_task_thread(t);
  lua_pushinteger(co, 42);
  lua_pushliteral(co, "x");
  f.op.task = NULL;
  lc_task_op_complete(t, 2);
  CHECK_INT(lc_task_op_pending(t), 0);
  /* A second completion finds nobody waiting: its values are dropped, not delivered. */
  lua_pushinteger(co, 99);
  lc_task_op_complete(t, 1);
  CHECK_INT(d.calls, 0); /* resumed at the resume point, not inside the completion */
  CHECK(run_until(&f, is_done, &d, 2000));
  CHECK_INT(d.status, LC_TASK_OK);
  CHECK_INT(d.nres, 3);
  CHECK_INT(d.ints[0], 42);
  CHECK_STR(d.str, "x");
  CHECK_INT(d.ints[2], 5);
  CHECK_INT(f.op.cancels, 0);
  CHECK_INT(fx_close(&f), 0);
}

TEST(deadline_of_a_waiting_task) {
  fx f;
  fx_open(&f);
  done_rec d = {0};
  uint64_t t0 = uv_now(&f.loop);
  spawn(&f, "wait_op(300) return 'finished'", 50, &d);
  CHECK(run_until(&f, is_done, &d, 3000));
  uint64_t took = uv_now(&f.loop) - t0;
  CHECK(took >= 49 && took < 300);
  CHECK_INT(d.calls, 1);
  CHECK_INT(d.status, LC_TASK_TIMEOUT);
  CHECK(strstr(d.err, "deadline") != NULL);
  CHECK_INT(f.op.cancels, 1);
  CHECK_INT(f.stops, 1);
  CHECK(f.stopped_id == d.id);
  CHECK_INT(d.stops_at_done, 1); /* told before done */
  CHECK_INT(lc_sched_count(f.s), 0);
  /* The operation never completes afterwards: its cancel stopped it. */
  run_for(&f, 350);
  CHECK_INT(f.op.completions, 0);
  CHECK_INT(f.op.late_completions, 0);
  CHECK_INT(d.calls, 1);
  CHECK_INT(fx_close(&f), 0);
}

/* A task that never yields is stopped by the count hook, and a pcall in the script (in the
 * task or in a coroutine it runs) cannot swallow the stop. */
TEST(deadline_of_a_running_task) {
  const char *scripts[] = {
      "local n = 0 while true do n = n + 1 end",
      "for i = 1, 3 do pcall(function() while true do end end) end return 'swallowed'",
      "local ok = pcall(coroutine.wrap(function() while true do end end)) return 'swallowed'",
      "local co = coroutine.create(function() while true do end end)\n"
      "coroutine.resume(co) return 'swallowed'",
      "local ok = xpcall(function() while true do end end, function(e) return e end)\n"
      "while not ok do ok = pcall(string.rep, 'x', 1) end return 'swallowed'",
  };
  for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
    fx f;
    fx_open(&f);
    done_rec d = {0};
    uint64_t t0 = uv_now(&f.loop);
    spawn(&f, scripts[i], 50, &d);
    CHECK(run_until(&f, is_done, &d, 5000));
    uv_update_time(&f.loop);
    CHECK(uv_now(&f.loop) - t0 >= 49);
    if (d.status != LC_TASK_TIMEOUT) fprintf(stderr, "  script %zu: status %d\n", i, d.status);
    CHECK_INT(d.status, LC_TASK_TIMEOUT);
    CHECK(strstr(d.err, "deadline passed") != NULL);
    CHECK_INT(f.stops, 1);
    CHECK_INT(lc_sched_count(f.s), 0);
    CHECK_INT(fx_close(&f), 0);
  }
}

TEST(kill_of_a_waiting_task) {
  fx f;
  fx_open(&f);
  done_rec d = {0};
  lc_task *t = spawn(&f, "note('w') wait_op(200) note('never') return 1", 0, &d);
  run_for(&f, 10);
  CHECK_INT(f.op.begun, 1);
  lc_task_kill(t, LC_TASK_CANCELLED, "stop now");
  /* Cancelled and told at once; finished (Lua runs) at the resume point. */
  CHECK_INT(f.op.cancels, 1);
  CHECK_INT(f.stops, 1);
  CHECK_INT(d.calls, 0);
  lc_task_kill(t, LC_TASK_TIMEOUT, "again"); /* a second kill changes nothing */
  CHECK(run_until(&f, is_done, &d, 2000));
  CHECK_INT(d.calls, 1);
  CHECK_INT(d.status, LC_TASK_CANCELLED);
  CHECK_STR(d.err, "stop now");
  CHECK_INT(f.op.cancels, 1);
  CHECK_INT(f.stops, 1);
  CHECK_INT(lc_sched_count(f.s), 0);
  run_for(&f, 250);
  CHECK_INT(f.op.completions + f.op.late_completions, 0);
  CHECK_STR(f.log, "w");
  CHECK_INT(fx_close(&f), 0);
}

TEST(kill_all) {
  fx f;
  fx_open(&f);
  done_rec a = {0}, b = {0}, c = {0};
  spawn(&f, "wait_op() note('A') return 1", 0, &a);
  spawn(&f, "sleep(10000) note('B') return 1", 0, &b);
  run_for(&f, 10);
  spawn(&f, "note('C') return 1", 0, &c); /* ready, never run */
  CHECK_INT(lc_sched_count(f.s), 3);
  lc_sched_kill_all(f.s, "shutting down");
  CHECK_INT(f.stops, 3);
  CHECK_INT(f.op.cancels, 1);
  CHECK(run_until(&f, is_done, &c, 2000));
  CHECK(run_until(&f, is_done, &b, 2000));
  CHECK(run_until(&f, is_done, &a, 2000));
  CHECK_INT(a.status, LC_TASK_CANCELLED);
  CHECK_INT(b.status, LC_TASK_CANCELLED);
  CHECK_INT(c.status, LC_TASK_CANCELLED);
  CHECK_STR(a.err, "shutting down");
  CHECK_INT(a.calls + b.calls + c.calls, 3);
  CHECK_STR(f.log, ""); /* none ran on, the ready one never started */
  CHECK_INT(lc_sched_count(f.s), 0);
  CHECK_INT(fx_close(&f), 0); /* the sleeping task's timer is closed too */
}

/* on_stop runs before the task's to-be-closed variables are closed, for every way a task is
 * stopped: a kill while it waits, its deadline while it waits, its deadline while it runs. */
TEST(on_stop_before_close_handlers) {
  const char *code =
      "local seen <close> = setmetatable({}, { __close = function() saw = stops() end })\n"
      "if mode == 'run' then while true do end else wait_op() end";
  for (int mode = 0; mode < 3; mode++) {
    fx f;
    fx_open(&f);
    lua_pushstring(f.L, mode == 2 ? "run" : "wait");
    lua_setglobal(f.L, "mode");
    done_rec d = {0};
    lc_task *t = spawn(&f, code, mode == 0 ? 0 : 40, &d);
    if (mode == 0) {
      run_for(&f, 10);
      lc_task_kill(t, LC_TASK_CANCELLED, "killed");
    }
    CHECK(run_until(&f, is_done, &d, 3000));
    CHECK_INT(d.status, mode == 0 ? LC_TASK_CANCELLED : LC_TASK_TIMEOUT);
    CHECK_INT(f.stops, 1);
    lua_getglobal(f.L, "saw");
    CHECK_INT(lua_tointeger(f.L, -1), 1); /* the __close handler ran, and after on_stop */
    lua_pop(f.L, 1);
    CHECK_INT(lc_sched_count(f.s), 0);
    CHECK_INT(fx_close(&f), 0);
  }
}

static int idle_called(fx *f, void *arg) {
  (void)arg;
  return f->idle_calls > 0;
}

TEST(on_idle_after_ready_tasks) {
  fx f;
  fx_open(&f);
  lc_sched_on_idle(f.s, on_idle, &f);
  done_rec a = {0}, b = {0}, c = {0};
  spawn(&f, "note('A')", 0, &a);
  spawn(&f, "note('B')", 0, &b);
  lc_sched_poke(f.s);
  CHECK(run_until(&f, idle_called, NULL, 2000));
  CHECK_STR(f.log, "ABI"); /* the ready tasks first, then the engine's work */
  CHECK_INT(f.idle_calls, 1);
  /* Without a poke the idle work does not run. */
  spawn(&f, "note('C')", 0, &c);
  CHECK(run_until(&f, is_done, &c, 2000));
  run_for(&f, 20);
  CHECK_STR(f.log, "ABIC");
  CHECK_INT(f.idle_calls, 1);
  /* A poke with nothing ready runs it alone, once. */
  lc_sched_poke(f.s);
  lc_sched_poke(f.s);
  run_for(&f, 20);
  CHECK_INT(f.idle_calls, 2);
  CHECK_STR(f.log, "ABICI");
  CHECK_INT(lc_sched_count(f.s), 0);
  CHECK_INT(fx_close(&f), 0);
}

/* Async calls where they cannot work are refused before anything starts. */
TEST(misuse_is_refused) {
  fx f;
  fx_open(&f);
  /* From the main thread. */
  CHECK(luaL_dostring(f.L, "sleep(1)") != LUA_OK);
  CHECK(strstr(lua_tostring(f.L, -1), "job handler's own coroutine") != NULL);
  lua_pop(f.L, 1);
  done_rec d = {0};
  spawn(&f,
        "local ok, e = pcall(table.sort, { 3, 1, 2 }, function(a, b) wait_op() return a < b end)\n"
        "local ok2, e2 = pcall(coroutine.wrap(function() wait_op() end))\n"
        "return e .. ' | ' .. e2",
        0, &d);
  CHECK(run_until(&f, is_done, &d, 2000));
  CHECK_INT(d.status, LC_TASK_OK);
  if (!strstr(d.str, "cannot be called inside")) fprintf(stderr, "  got: %s / %s\n", d.str, d.err);
  CHECK(strstr(d.str, "cannot be called inside") != NULL);
  CHECK(strstr(d.str, "own coroutine") != NULL);
  CHECK_INT(f.op.begun, 0); /* refused before any operation began */
  CHECK_INT(fx_close(&f), 0);
}

/* The scheduler freed while tasks still wait: they are stopped and finished, their
 * operations cancelled, their timers closed, so the loop still closes. */
TEST(free_with_tasks_left) {
  fx f;
  fx_open(&f);
  done_rec a = {0}, b = {0};
  spawn(&f, "wait_op()", 0, &a);
  spawn(&f, "sleep(10000)", 0, &b);
  run_for(&f, 10);
  CHECK_INT(lc_sched_count(f.s), 2);
  CHECK_INT(fx_close(&f), 0);
  CHECK_INT(a.calls, 1);
  CHECK_INT(b.calls, 1);
  CHECK_INT(a.status, LC_TASK_CANCELLED);
  CHECK_INT(f.op.cancels, 1);
}

int main(void) {
  RUN(spawn_and_return);
  RUN(error_with_traceback);
  RUN(sleep_and_yield);
  RUN(op_complete_resumes_with_values);
  RUN(deadline_of_a_waiting_task);
  RUN(deadline_of_a_running_task);
  RUN(kill_of_a_waiting_task);
  RUN(kill_all);
  RUN(on_stop_before_close_handlers);
  RUN(on_idle_after_ready_tasks);
  RUN(misuse_is_refused);
  RUN(free_with_tasks_left);
  DONE();
}
