/* stats.c: the job's statistics, defined once. Owns: the list of every counter a job reports,
 * where each goes (job:stats(), the --stats file, or both, as docs/API.md's table says) and how
 * it is written. job:stats() (l_core.c) and lc_job_write_stats read this list; the progress
 * line and the summary read the same counters through lc_job_stats too. */
#include <inttypes.h>
#include <stdio.h>

#include "job_int.h"
#include "proc.h"

#define LIVE 1 /* in job:stats() */
#define FILE_ 2 /* in the --stats file */
#define BOTH (LIVE | FILE_)

size_t lc_job_stats(lc_job *j, lc_stat *out, size_t cap) {
  lc_cache_stats cs = {0};
  if (j->sh->cache) lc_cache_get_stats(j->sh->cache, &cs);
  lc_bpool_stats bs = {0};
  if (j->sh->pool) lc_bpool_get_stats(j->sh->pool, &bs);
  j->sh->ops->sample_mem(j->sh->ud); /* at most once a second */
  lc_netguard_stats ns;
  lc_netguard_stats_get(j->sb.guard, &ns);
  const lc_shared *sh = j->sh;
  double secs = j->started ? (double)(lc_now(j->sh) - (int64_t)j->started_ms) / 1000.0 : 0;
  lc_stat all[] = {
      {"pages_ok", BOTH, LC_STAT_COUNT, (double)j->n.pages_ok},
      {"pages_failed", BOTH, LC_STAT_COUNT, (double)j->n.pages_failed},
      {"retries", BOTH, LC_STAT_COUNT, (double)j->n.retries},
      {"throttled", BOTH, LC_STAT_COUNT, (double)j->n.throttled},
      {"robots_skipped", BOTH, LC_STAT_COUNT, (double)j->n.robots_skipped},
      {"records", BOTH, LC_STAT_COUNT, (double)j->n.emitted},
      {"contexts_created", BOTH, LC_STAT_COUNT, (double)cs.contexts_created},
      {"contexts_closed", BOTH, LC_STAT_COUNT, (double)cs.contexts_closed},
      {"contexts_lost", BOTH, LC_STAT_COUNT, (double)cs.contexts_lost},
      {"contexts_open", LIVE, LC_STAT_COUNT, cs.contexts_open},
      {"contexts_open_at_exit", FILE_, LC_STAT_COUNT, cs.contexts_open},
      {"contexts_open_peak", BOTH, LC_STAT_COUNT, cs.contexts_open_peak},
      {"refs_outstanding", BOTH, LC_STAT_COUNT, cs.refs_outstanding},
      {"bad_releases", BOTH, LC_STAT_COUNT, (double)cs.bad_releases},
      {"pages_created", BOTH, LC_STAT_COUNT, (double)cs.pages_created},
      {"pages_reused", BOTH, LC_STAT_COUNT, (double)cs.pages_reused},
      {"pages_evicted", BOTH, LC_STAT_COUNT, (double)cs.pages_evicted},
      {"pages_retired", BOTH, LC_STAT_COUNT, (double)cs.pages_retired},
      {"contexts_retired", BOTH, LC_STAT_COUNT, (double)cs.contexts_retired},
      {"idle_target", LIVE, LC_STAT_COUNT, cs.idle_target},
      {"idle_ghost_hits", FILE_, LC_STAT_COUNT, (double)cs.idle_ghost_hits},
      {"pages_closed", BOTH, LC_STAT_COUNT, (double)cs.pages_closed},
      {"idle_pages", LIVE, LC_STAT_COUNT, cs.idle_pages},
      {"in_flight", LIVE, LC_STAT_COUNT, j->in_flight},
      {"queued", LIVE, LC_STAT_COUNT, (double)lc_frontier_pending(j->frontier)},
      {"browser_starts", BOTH, LC_STAT_COUNT, bs.browser_starts},
      {"browser_crashes", BOTH, LC_STAT_COUNT, bs.browser_crashes},
      {"browser_recycles", BOTH, LC_STAT_COUNT, sh->browser_recycles},
      {"events_dropped", BOTH, LC_STAT_COUNT, (double)bs.events_dropped},
      {"events_queued_bytes", LIVE, LC_STAT_COUNT, (double)bs.events_queued_bytes},
      {"browser", LIVE, LC_STAT_COUNT, sh->gen},
      {"browser_pid", LIVE, LC_STAT_COUNT, sh->pool ? lc_bpool_pid(sh->pool, sh->gen) : 0},
      {"browser_pss_mb", BOTH, LC_STAT_MB, (double)sh->browser_pss_kb / 1024.0},
      {"browser_pss_peak_mb", BOTH, LC_STAT_MB, (double)sh->browser_pss_peak_kb / 1024.0},
      {"browser_rss_peak_mb", BOTH, LC_STAT_MB, (double)sh->browser_rss_peak_kb / 1024.0},
      {"browser_rss_mb", LIVE, LC_STAT_MB, (double)sh->browser_rss_kb / 1024.0},
      {"engine_rss_mb", LIVE, LC_STAT_MB, (double)lc_proc_self_rss_kb() / 1024.0},
      {"engine_rss_peak_mb", FILE_, LC_STAT_MB, (double)lc_proc_self_peak_rss_kb() / 1024.0},
      {"browser_log_bytes", LIVE, LC_STAT_COUNT, (double)bs.log_bytes},
      {"browser_log_kept", LIVE, LC_STAT_COUNT, (double)bs.log_kept_max},
      {"browsers_unsandboxed", LIVE, LC_STAT_COUNT, bs.unsandboxed},
      {"net_connections", BOTH, LC_STAT_COUNT, (double)ns.connections},
      {"net_refused", BOTH, LC_STAT_COUNT, (double)ns.refused},
      {"net_failed", FILE_, LC_STAT_COUNT, (double)ns.failed},
      {"net_bytes", FILE_, LC_STAT_COUNT, (double)ns.bytes},
      {"seconds", FILE_, LC_STAT_SECONDS, secs},
      {"interrupted", FILE_, LC_STAT_BOOL, j->stop_signal != 0},
  };
  size_t n = sizeof all / sizeof all[0];
  for (size_t i = 0; i < n && i < cap; i++) out[i] = all[i];
  return n;
}

int lc_job_stat_live(const lc_stat *s) { return (s->where & LIVE) != 0; }

int lc_job_write_stats(lc_job *j, const char *path) {
  lc_stat st[LC_JOB_MAX_STATS];
  size_t n = lc_job_stats(j, st, LC_JOB_MAX_STATS);
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  const char *sep = "{";
  for (size_t i = 0; i < n && i < LC_JOB_MAX_STATS; i++) {
    if (!(st[i].where & FILE_)) continue;
    fprintf(f, "%s\"%s\":", sep, st[i].name);
    switch (st[i].kind) {
    case LC_STAT_COUNT: fprintf(f, "%" PRId64, (int64_t)st[i].value); break;
    case LC_STAT_MB: fprintf(f, "%.1f", st[i].value); break;
    case LC_STAT_SECONDS: fprintf(f, "%.3f", st[i].value); break;
    case LC_STAT_BOOL: fputs(st[i].value != 0 ? "true" : "false", f); break;
    }
    sep = ",";
  }
  fputs("}\n", f);
  return fclose(f) == 0 ? 0 : -1;
}
