/* interrupt.h: SIGINT and SIGTERM for the whole process.
 *
 * Owns: the process's handlers for SIGINT and SIGTERM, the flag that tells running Lua code to
 * give control back (read by the tasks' count hook, as lua.c's handler sets a hook), the
 * wake-up of the loop, and a watchdog thread that ends the process when the loop does not take
 * the signal in time: Lua stuck inside one long C call (a pathological pattern, a huge
 * string.rep) never reaches a hook. The watchdog runs `last_words` (which must be
 * async-signal-safe: the engine passes lc_browser_kill_all_now) and _exits with 128 + signal.
 *
 * Sequence: the handler sets the pending flag, wakes the loop (uv_async_send) and the watchdog
 * (sem_post). The next count hook in any Lua thread raises; the loop then runs `on_signal`
 * (which clears the flag: the shutdown's own Lua code runs normally). If on_signal has not run
 * within LC_INTERRUPT_ACK_MS, or the loop stops turning for LC_INTERRUPT_STALL_MS during the
 * shutdown, the watchdog ends the process. A second signal ends it at once (same way).
 */
#ifndef LC_INTERRUPT_H
#define LC_INTERRUPT_H

#include <uv.h>

#define LC_INTERRUPT_ACK_MS 600
#define LC_INTERRUPT_STALL_MS 1500
#define LC_INTERRUPT_TOTAL_MS 20000

typedef void (*lc_interrupt_fn)(int sig, void *ud);

/* Install the handlers and start the watchdog (once per process). `on_signal` runs on the
 * loop, once, for the first signal. Returns 0 or a negative errno. Released by
 * lc_interrupt_stop (after which a signal ends the process at once, the same way). */
int lc_interrupt_start(uv_loop_t *loop, lc_interrupt_fn on_signal, void *ud,
                       void (*last_words)(void));
/* Close the loop's handles (run the loop afterwards so they finish closing). */
void lc_interrupt_stop(void);

/* True while a signal arrived that the loop has not taken yet: Lua must stop and return. */
int lc_interrupt_pending(void);

#endif
