/* interrupt.c: SIGINT and SIGTERM, the pending flag, and the watchdog (see interrupt.h). */
#include "interrupt.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
  uv_async_t async;                   /* wakes the loop: on_signal runs from its callback */
  uv_prepare_t beat;                  /* counts loop turns, for the watchdog */
  volatile sig_atomic_t handles_live; /* the two handles are initialized and not closing */
  lc_interrupt_fn on_signal;
  void *ud;
  void (*last_words)(void);
  sem_t wake;                    /* posted by the handler, waited on by the watchdog */
  volatile sig_atomic_t pending; /* a signal the loop has not taken */
  atomic_int first_sig;          /* the first signal, 0 before */
  atomic_int signals;            /* signals received */
  atomic_int taken;              /* on_signal has run */
  atomic_uint beats;             /* loop turns */
} g;

static int exit_code(int sig) { return 128 + sig; }

/* Ends the process: the browser first (async-signal-safe), then _exit. */
static void die_now(int sig, const char *why) {
  if (why) {
    ssize_t w = write(STDERR_FILENO, why, strlen(why));
    (void)w;
  }
  if (g.last_words) g.last_words();
  _exit(exit_code(sig));
}

static void on_sig(int sig) {
  int saved = errno;
  if (atomic_fetch_add(&g.signals, 1) > 0 || !g.handles_live) {
    /* A second signal, or one after the loop's handles closed: no more waiting. */
    die_now(sig, NULL);
  }
  atomic_store(&g.first_sig, sig);
  g.pending = 1;
  uv_async_send(&g.async); /* async-signal-safe (libuv documents it) */
  sem_post(&g.wake);
  errno = saved;
}

static void async_cb(uv_async_t *h) {
  (void)h;
  int sig = atomic_load(&g.first_sig);
  if (!sig || atomic_load(&g.taken)) return;
  g.pending = 0;
  atomic_store(&g.taken, 1);
  if (g.on_signal) g.on_signal(sig, g.ud);
}

static void beat_cb(uv_prepare_t *h) {
  (void)h;
  atomic_fetch_add(&g.beats, 1);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The watchdog: sleeps until a signal, then watches the loop take it and shut down. Times are
 * read from the clock, not counted in sleeps: on a loaded machine a 20 ms sleep takes longer. */
static void *watchdog(void *arg) {
  (void)arg;
  while (sem_wait(&g.wake) != 0) {
  }
  int64_t start = mono_ms(), last_beat_ms = start;
  int sig = atomic_load(&g.first_sig);
  const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
  char msg[200];
  unsigned last = atomic_load(&g.beats);
  for (;;) {
    sleep_ms(10);
    int64_t now = mono_ms();
    unsigned beats = atomic_load(&g.beats);
    if (beats != last) {
      last = beats;
      last_beat_ms = now;
    }
    if (!atomic_load(&g.taken)) {
      if (now - start < LC_INTERRUPT_ACK_MS) continue;
      snprintf(msg, sizeof msg,
               "luacrawl: %s: the engine did not take it within %d ms (Lua stuck in a long "
               "call?); killing the browser and exiting\n",
               name, LC_INTERRUPT_ACK_MS);
      die_now(sig, msg);
    }
    int stalled = now - last_beat_ms >= LC_INTERRUPT_STALL_MS;
    if (stalled || now - start >= LC_INTERRUPT_TOTAL_MS) {
      snprintf(msg, sizeof msg, "luacrawl: %s: the shutdown %s; killing the browser and exiting\n",
               name, stalled ? "stopped making progress" : "took too long");
      die_now(sig, msg);
    }
  }
  return NULL;
}

int lc_interrupt_start(uv_loop_t *loop, lc_interrupt_fn on_signal, void *ud,
                       void (*last_words)(void)) {
  static int started;
  if (started) return -EALREADY;
  g.on_signal = on_signal;
  g.ud = ud;
  g.last_words = last_words;
  if (sem_init(&g.wake, 0, 0) != 0) return -errno;
  int rc = uv_async_init(loop, &g.async, async_cb);
  if (rc < 0) return rc;
  uv_unref((uv_handle_t *)&g.async);
  uv_prepare_init(loop, &g.beat);
  uv_prepare_start(&g.beat, beat_cb);
  uv_unref((uv_handle_t *)&g.beat);
  g.handles_live = 1;

  /* The watchdog takes no signals: they go to the loop's thread. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pthread_t th;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  rc = pthread_create(&th, &attr, watchdog, NULL);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) return -rc;

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sig;
  sigfillset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) return -errno;
  started = 1;
  return 0;
}

void lc_interrupt_stop(void) {
  if (!g.handles_live) return;
  g.handles_live = 0; /* from now on a signal ends the process at once */
  uv_close((uv_handle_t *)&g.async, NULL);
  uv_close((uv_handle_t *)&g.beat, NULL);
}

int lc_interrupt_pending(void) { return g.pending; }
