/* serve.h: `luacrawl serve`, the HTTP service on the engine's own loop (docs/SERVICE.md).
 * Owns: the server's configuration (a Lua table checked like a job's), its listening vhost on
 * the engine's libwebsockets context, every HTTP transaction and its buffers, the registry of
 * service jobs (POST /jobs and the built-in job behind POST /crawl) with their files under the
 * data directory, admission control, metrics, the status page, and the graceful stop on
 * SIGTERM. It uses the engine only through engine.h: lc_engine_add_job, lc_engine_start_job,
 * lc_engine_cancel_job, lc_engine_remove_job, lc_engine_run_until. */
#ifndef LC_SERVE_H
#define LC_SERVE_H

/* `luacrawl serve [options]`: argv[0] is "serve". Returns the exit code (0 after a graceful
 * stop, 1 when the service could not run, 2 for bad input: one line on stderr). */
int lc_serve_main(int argc, char **argv);

#endif
