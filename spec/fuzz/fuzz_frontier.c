/* fuzz_frontier.c: sequences of push / pop / retry / done / release on the in-memory frontier
 * (engine/frontier.h, lc_frontier_memory_new) against a model that is a plain array.
 *
 * The model: every accepted URL once (dedupe on the canonical URL), its id (1, 2, ... in push
 * order), its state (ready, waiting for a retry time, handed out, done) and the order in which
 * it became ready. Properties checked after every operation: push answers 1 / 0 (seen) /
 * EFULL / EURL as the model says; pop hands out exactly the model's oldest ready request among
 * the hosts `admit` accepts (and 0 when there is none), asks admit at most once per host with
 * that host's oldest ready URL, and fills id, url, depth, attempt, data as pushed; retry,
 * done and release answer ENOENT exactly for ids not handed out; a request released is ready
 * at once, older than every other ready one (the later of two released the older), its
 * attempt unchanged; next_ms is the earliest retry time still
 * waiting; pending and accepted agree with the model. */
#include "frontier.h"
#include "fuzz.h"
#include "url.h"

#define MAX_ITEMS 256

enum { READY, WAITING, OUT, DONE };

typedef struct model_item {
  char *url; /* canonical */
  char host[64];
  char *data; /* as pushed, may be NULL */
  int depth, attempt, state;
  int64_t not_before;
  uint64_t ready_seq, retry_seq;
  lc_request held; /* while OUT: the request pop gave us */
} model_item;

typedef struct model {
  model_item items[MAX_ITEMS]; /* index i holds id i + 1 */
  size_t n;
  uint64_t seq;       /* ready order of pushes and due retries: counts up from 2^62 */
  uint64_t front_seq; /* ready order of releases: counts down from below 2^62 */
  unsigned admit_mask; /* bit h: host number h is admitted */
  unsigned asked_mask; /* hosts admit was asked about in this pop */
  int64_t now;
} model;

static const char *const hosts[] = {"a.test", "B.test:8080", "c.test:80", "[::1]"};
static const char *const canon_hosts[] = {"a.test", "b.test:8080", "c.test", "[::1]"};
#define N_HOSTS 4

static int host_index(const char *host) {
  for (int i = 0; i < N_HOSTS; i++)
    if (strcmp(host, canon_hosts[i]) == 0) return i;
  return -1;
}

/* Move due retries to ready, earliest time first, then earliest retry. */
static void model_release(model *m) {
  for (;;) {
    model_item *best = NULL;
    for (size_t i = 0; i < m->n; i++) {
      model_item *it = &m->items[i];
      if (it->state != WAITING || it->not_before > m->now) continue;
      if (!best || it->not_before < best->not_before ||
          (it->not_before == best->not_before && it->retry_seq < best->retry_seq))
        best = it;
    }
    if (!best) return;
    best->state = READY;
    best->ready_seq = m->seq++;
  }
}

static size_t model_pending(const model *m) {
  size_t k = 0;
  for (size_t i = 0; i < m->n; i++) k += m->items[i].state == READY || m->items[i].state == WAITING;
  return k;
}

/* The oldest ready item of host h, or NULL. */
static model_item *oldest_of(model *m, int h) {
  model_item *best = NULL;
  for (size_t i = 0; i < m->n; i++) {
    model_item *it = &m->items[i];
    if (it->state == READY && host_index(it->host) == h &&
        (!best || it->ready_seq < best->ready_seq))
      best = it;
  }
  return best;
}

static int admit(void *ud, const char *url) {
  model *m = ud;
  char host[64];
  FUZZ_CHECK(lc_url_host(url, host, sizeof host) == 0);
  int h = host_index(host);
  FUZZ_CHECK(h >= 0);
  FUZZ_CHECK(!(m->asked_mask & (1u << h))); /* at most once per host per pop */
  m->asked_mask |= 1u << h;
  model_item *oldest = oldest_of(m, h);
  FUZZ_CHECK(oldest && strcmp(oldest->url, url) == 0);
  return (m->admit_mask >> h) & 1;
}

static void op_push(lc_frontier *f, model *m, fuzz_in *in, size_t max_pages) {
  int h = fuzz_u8(in) % N_HOSTS;
  size_t plen;
  const uint8_t *path = fuzz_bytes(in, 6, &plen);
  char url[128];
  int w = snprintf(url, sizeof url, "http://%s/", hosts[h]);
  for (size_t i = 0; i < plen; i++) url[w++] = (char)(path[i] ? path[i] : 'x');
  url[w] = 0;
  uint8_t flags = fuzz_u8(in);
  int depth = flags == 0xFF ? -1 : flags % 3;
  const char *data = (flags & 4) ? "{\"k\":1}" : NULL;

  char *norm = NULL;
  int nrc = lc_url_normalize(NULL, url, &norm, NULL);
  int rc = lc_frontier_push(f, url, depth, data, m->now);
  if (depth < 0) {
    FUZZ_CHECK(rc == LC_FRONTIER_EINVAL);
  } else if (nrc != 0) {
    FUZZ_CHECK(rc == LC_FRONTIER_EURL);
  } else {
    int seen = 0;
    for (size_t i = 0; i < m->n; i++) seen |= strcmp(m->items[i].url, norm) == 0;
    if (seen) {
      FUZZ_CHECK(rc == 0);
    } else if (max_pages && m->n >= max_pages) {
      FUZZ_CHECK(rc == LC_FRONTIER_EFULL);
    } else {
      FUZZ_CHECK(rc == 1);
      model_release(m); /* due retries queue ahead of this push */
      model_item *it = &m->items[m->n++];
      memset(it, 0, sizeof *it);
      it->url = norm;
      norm = NULL;
      FUZZ_CHECK(lc_url_host(it->url, it->host, sizeof it->host) == 0);
      it->data = data ? strdup(data) : NULL;
      it->depth = depth;
      it->state = READY;
      it->ready_seq = m->seq++;
    }
  }
  free(norm);
}

static void op_pop(lc_frontier *f, model *m, fuzz_in *in) {
  m->admit_mask = fuzz_u8(in) & 0xF;
  int use_admit = m->admit_mask != 0xF;
  m->asked_mask = 0;
  model_release(m);
  model_item *want = NULL;
  for (int h = 0; h < N_HOSTS; h++) {
    if (use_admit && !((m->admit_mask >> h) & 1)) continue;
    model_item *o = oldest_of(m, h);
    if (o && (!want || o->ready_seq < want->ready_seq)) want = o;
  }
  lc_request r;
  int64_t next_ms = 7;
  int rc = lc_frontier_pop(f, m->now, use_admit ? admit : NULL, m, &r, &next_ms);
  int64_t earliest = -1;
  for (size_t i = 0; i < m->n; i++)
    if (m->items[i].state == WAITING && (earliest < 0 || m->items[i].not_before < earliest))
      earliest = m->items[i].not_before;
  if (!want) {
    FUZZ_CHECK(rc == 0 && r.url == NULL && r.id == 0);
  } else {
    FUZZ_CHECK(rc == 1);
    FUZZ_CHECK(r.id == (uint64_t)(want - m->items) + 1);
    FUZZ_CHECK(r.url && strcmp(r.url, want->url) == 0);
    FUZZ_CHECK(r.depth == want->depth && r.attempt == want->attempt);
    FUZZ_CHECK((r.data_json == NULL) == (want->data == NULL));
    if (want->data) FUZZ_CHECK(strcmp(r.data_json, want->data) == 0);
    want->state = OUT;
    want->held = r;
  }
  FUZZ_CHECK(next_ms == earliest);
}

/* An id: one handed out (by position among them), or an id not handed out. */
static model_item *pick_out(model *m, uint8_t k) {
  size_t outs = 0;
  for (size_t i = 0; i < m->n; i++) outs += m->items[i].state == OUT;
  if (outs == 0 || k >= 0xC0) return NULL;
  size_t want = k % outs;
  for (size_t i = 0; i < m->n; i++)
    if (m->items[i].state == OUT && want-- == 0) return &m->items[i];
  return NULL;
}

static void op_retry(lc_frontier *f, model *m, fuzz_in *in) {
  model_item *it = pick_out(m, fuzz_u8(in));
  int64_t not_before = m->now + (int64_t)fuzz_u8(in) - 16;
  if (!it) { /* an id that is not handed out: a done or never popped one, or unknown */
    lc_request r = {0};
    r.id = m->n + 1 + fuzz_u8(in) % 3;
    for (size_t i = 0; i < m->n; i++)
      if (m->items[i].state != OUT && (fuzz_u8(in) & 1)) r.id = i + 1;
    r.url = strdup("http://a.test/");
    FUZZ_CHECK(lc_frontier_retry(f, &r, not_before) == LC_FRONTIER_ENOENT);
    FUZZ_CHECK(r.url == NULL); /* retry always takes the strings */
    return;
  }
  FUZZ_CHECK(lc_frontier_retry(f, &it->held, not_before) == 0);
  FUZZ_CHECK(it->held.url == NULL && it->held.id == 0);
  it->state = WAITING;
  it->attempt++;
  it->not_before = not_before;
  it->retry_seq = m->seq++;
}

static void op_done(lc_frontier *f, model *m, fuzz_in *in) {
  model_item *it = pick_out(m, fuzz_u8(in));
  if (!it) {
    uint64_t id = m->n + 1 + fuzz_u8(in) % 3;
    for (size_t i = 0; i < m->n; i++)
      if (m->items[i].state != OUT && (fuzz_u8(in) & 1)) id = i + 1;
    FUZZ_CHECK(lc_frontier_done(f, id, 1) == LC_FRONTIER_ENOENT);
    return;
  }
  FUZZ_CHECK(lc_frontier_done(f, (uint64_t)(it - m->items) + 1, fuzz_u8(in) & 1) == 0);
  lc_request_clear(&it->held);
  it->state = DONE;
}

static void op_release(lc_frontier *f, model *m, fuzz_in *in) {
  model_item *it = pick_out(m, fuzz_u8(in));
  if (!it) {
    lc_request r = {0};
    r.id = m->n + 1 + fuzz_u8(in) % 3;
    for (size_t i = 0; i < m->n; i++)
      if (m->items[i].state != OUT && (fuzz_u8(in) & 1)) r.id = i + 1;
    r.url = strdup("http://a.test/");
    FUZZ_CHECK(lc_frontier_release(f, &r) == LC_FRONTIER_ENOENT);
    FUZZ_CHECK(r.url == NULL); /* release always takes the strings */
    return;
  }
  FUZZ_CHECK(lc_frontier_release(f, &it->held) == 0);
  FUZZ_CHECK(it->held.url == NULL && it->held.id == 0);
  it->state = READY;
  it->ready_seq = m->front_seq--;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size, 0};
  static model m;
  memset(&m, 0, sizeof m);
  m.seq = (uint64_t)1 << 62; /* as the frontier's stamps */
  m.front_seq = m.seq - 1;
  size_t max_pages = fuzz_u8(&in) % 8; /* 0: unlimited */
  lc_frontier *f = lc_frontier_memory_new(max_pages);
  FUZZ_CHECK(f != NULL);
  while (!fuzz_done(&in)) {
    uint8_t op = fuzz_u8(&in);
    m.now += op >> 4; /* a clock that never goes back */
    switch (op % 6) {
      case 0:
      case 1:
        if (m.n < MAX_ITEMS) op_push(f, &m, &in, max_pages);
        break;
      case 2:
        op_pop(f, &m, &in);
        break;
      case 3:
        op_retry(f, &m, &in);
        break;
      case 5:
        op_release(f, &m, &in);
        break;
      default:
        op_done(f, &m, &in);
        break;
    }
    FUZZ_CHECK(lc_frontier_pending(f) == model_pending(&m));
    FUZZ_CHECK(lc_frontier_accepted(f) == m.n);
  }
  lc_frontier_destroy(f);
  for (size_t i = 0; i < m.n; i++) {
    lc_request_clear(&m.items[i].held); /* handed-out requests stay the caller's */
    free(m.items[i].url);
    free(m.items[i].data);
  }
  return 0;
}
