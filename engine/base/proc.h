/* proc.h: process-tree helpers on Linux /proc, and recursive directory removal.
 *
 * Owns nothing: every call reads /proc afresh and returns plain numbers. Used by browser.c
 * to measure and clean up a Chromium process tree, and by the engine for its own memory.
 *
 * "The tree of root" means: root, every live descendant of root (following the ppid links
 * in /proc/<pid>/stat), and, when root leads its own process group, every member of that group
 * (Chromium's children stay in the group the launcher made, even once re-parented). If root is
 * gone but processes remain in the group numbered root (the kernel never reuses a pid while it
 * is still some group's id), those and their descendants are the tree. Reads are racy by
 * nature: a process that exits mid-scan is skipped.
 */
#ifndef LC_PROC_H
#define LC_PROC_H

#include <sys/types.h>

/* The fields of one /proc/<pid>/stat line that the tree walks use. */
typedef struct lc_proc_stat {
  pid_t pid, ppid, pgrp; /* pid is not parsed: the reader sets it */
  char state;
  long long utime, stime, cutime, cstime; /* clock ticks */
  long long rss_pages;
} lc_proc_stat;

/* Parses the NUL-terminated text of a /proc/<pid>/stat file into *st (all but pid). comm, the
 * second field, may hold any bytes but NUL, spaces and ')' included: the fields are read after
 * the last ')'. Returns 0, or -1 when the text has no "comm) S" (a state) at all. Numbers of
 * too many digits saturate at LLONG_MAX. Pure and async-signal-safe; exposed for the fuzz
 * target. */
int lc_proc_parse_stat(const char *buf, lc_proc_stat *st);

/* RSS in KiB summed over the tree of root; 0 if nothing of it is alive. */
long lc_proc_tree_rss_kb(pid_t root);

/* Memory of the tree of root. Summed RSS counts every shared page once per process that maps
 * it (5-7x what a Chromium tree really holds); PSS divides each shared page among its sharers,
 * so the sum over a tree is what the tree costs. */
typedef struct lc_proc_mem {
  long rss_kb; /* summed RSS */
  long pss_kb; /* summed PSS from /proc/PID/smaps_rollup; 0 unless asked for */
  int procs;   /* members of the tree */
} lc_proc_mem;

/* Fills *out for the tree of root, reading PSS too when want_pss (one more file a member, and
 * the kernel walks its page tables: sample it at most once a second). Returns the member count,
 * 0 if nothing of the tree is alive. One /proc walk, O(n log n) in the processes listed. */
int lc_proc_tree_mem(pid_t root, int want_pss, lc_proc_mem *out);

/* PSS of one process in KiB (smaps_rollup), or -1 if it is gone or unreadable. */
long lc_proc_pss_kb(pid_t pid);

/* User + system CPU seconds over the tree of root: utime + stime of every member, plus
 * cutime + cstime (the times of children a member has already reaped, which are no longer
 * listed themselves). Time of members reaped by a process outside the tree (for example
 * crashpad helpers re-parented to init) is lost. 0.0 if nothing of it is alive. */
double lc_proc_cpu_seconds(pid_t root);

/* This process's resident set (VmRSS) and its peak (VmHWM) in KiB; -1 on error. */
long lc_proc_self_rss_kb(void);
long lc_proc_self_peak_rss_kb(void);

/* Number of live (not zombie, not dead) processes whose process group is pgid.
 * Async-signal-safe, like lc_proc_signal_by_cmdline. */
int lc_proc_group_alive(pid_t pgid);

/* Sends sig to every process (other than this one) one of whose command-line arguments holds
 * path, at its start or right after an '=', followed by '/' or by the end of the argument
 * (`--user-data-dir=P`, `--database=P/.config/...`, `P/x`). Returns how many were signalled.
 * With sig 0 it only counts them (zombies have no command line and never count). Used to reach
 * helpers that left the group (crashpad) but name the profile dir. Async-signal-safe. */
int lc_proc_signal_by_cmdline(const char *path, int sig);

/* Renames this process for ps and /proc: sets comm (PR_SET_NAME, at most 15 bytes kept) and
 * overwrites the argument area that /proc/self/cmdline shows with name and NUL bytes (cut to
 * the area's length), so that no argument of the original command line stays visible. The area
 * is located through /proc/self/stat (arg_start, arg_end) and is left alone (-ERANGE; comm is
 * still set) unless it starts at argv[0] and its bytes match /proc/self/cmdline (under valgrind
 * it is left alone: there the command line shown is valgrind's own). Meant for a process forked
 * from the engine that does not exec.
 * Returns 0 or a negative errno. Async-signal-safe. */
int lc_proc_self_rename(const char *name);

/* Removes path and everything below it (nftw, FTW_DEPTH | FTW_PHYS: symlinks are removed, never
 * followed). Keeps going past errors. Returns 0, or the first negative errno met; -ENOENT if
 * path does not exist. */
int lc_rmtree(const char *path);

/* The same without nftw, for signal handlers: only openat/getdents64/unlinkat/close and fixed
 * stack buffers; gives up below 32 levels (-ELOOP). Same return values. */
int lc_rmtree_signal_safe(const char *path);

#endif
