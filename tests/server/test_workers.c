/* test_workers.c — queue + worker pool against a fake engine: every item comes
 * back exactly once with the right output, batches never exceed max_batch,
 * a full queue refuses at once (after dropping items whose client is gone),
 * expired and cancelled items are dropped before the engine,
 * the batch timeout holds (and a push withdraws its own announcement), and
 * close/abort drain cleanly. Labelled tsan. */
#include "check.h"
#include "workers.h"
#include "queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IN 4
#define OUT 2

typedef struct {
    _Atomic int runs, images, max_seen, ctxs;
    int sleep_us;
} fake;

static void *fake_ctx(void *user, int worker, char *err, size_t len) {
    fake *f = user;
    (void)worker;
    (void)err;
    (void)len;
    atomic_fetch_add(&f->ctxs, 1);
    return f;
}

/* The fake's taps: tap 0 is in[1] * 3, tap 1 is in[2] - 1 (one float each). */
static int fake_run(void *ctx, const float *in, int n, float *out, const engine_fetch *fetch,
                    int nfetch, char *err, size_t len) {
    fake *f = ctx;
    for (int i = 0; i < n; i++) {
        out[i * OUT] = in[i * IN] * 2;
        out[i * OUT + 1] = in[i * IN + 3] + 1;
    }
    for (int i = 0; i < nfetch; i++) /* tap 7 cannot be copied: the run fails */
        if (fetch[i].tap == 7) {
            snprintf(err, len, "tap 7 cannot be copied");
            return -1;
        }
    for (int i = 0; i < nfetch; i++) {
        CHECK(fetch[i].image >= 0 && fetch[i].image < n);
        const float *x = in + (size_t)fetch[i].image * IN;
        fetch[i].dst[0] = fetch[i].tap == 0 ? x[1] * 3 : x[2] - 1;
    }
    atomic_fetch_add(&f->runs, 1);
    atomic_fetch_add(&f->images, n);
    int m = atomic_load(&f->max_seen);
    while (n > m && !atomic_compare_exchange_weak(&f->max_seen, &m, n))
        ;
    if (f->sleep_us) {
        struct timespec ts = {0, f->sleep_us * 1000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void fake_free(void *ctx) {
    (void)ctx;
}

typedef struct {
    queue_item qi;
    float in[IN], out[OUT], tap[1];
    _Atomic int done;
    _Atomic int gone; /* its "client" left: the alive hook says 0 */
    _Atomic int alive_calls;
} item;

static int item_alive(queue_item *it) {
    item *x = (item *)it;
    atomic_fetch_add(&x->alive_calls, 1);
    return !atomic_load(&x->gone);
}

static _Atomic int g_done;

static void on_done(queue_item *it) {
    item *x = (item *)it;
    atomic_fetch_add(&x->done, 1);
    atomic_fetch_add(&g_done, 1);
}

static void wait_done(int n) {
    for (int i = 0; i < 10000 && atomic_load(&g_done) < n; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK(atomic_load(&g_done) == n);
}

static workers_pool *start(fake *f, queue *q, int workers, int max_batch, int64_t timeout_ns) {
    workers_params p = {q,        workers,  max_batch, timeout_ns, IN,   OUT,
                        fake_ctx, fake_run, fake_free, f,          NULL, 0};
    char err[128];
    workers_pool *b = workers_start(&p, err, sizeof err);
    CHECK(b);
    for (int i = 0; i < 5000 && workers_ready(b, NULL, 0) != 1; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK(workers_ready(b, NULL, 0) == 1);
    return b;
}

typedef struct {
    queue *q;
    item *items;
    int n;
} producer;

static void *produce(void *arg) {
    producer *p = arg;
    for (int i = 0; i < p->n; i++) {
        queue_item *qi = &p->items[i].qi;
        while (queue_push(p->q, &qi, 1) == QUEUE_FULL) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* Many producers, several workers: every item exactly once, correct output. */
static void test_concurrent(void) {
    enum { P = 4, N = 500 };
    fake f = {0};
    queue *q = queue_create(64, NULL, NULL);
    CHECK(q);
    workers_pool *b = start(&f, q, 2, 8, 200000);
    CHECK(atomic_load(&f.ctxs) == 2);
    int warm_runs = atomic_load(&f.runs);
    CHECK(warm_runs == 2 * 8); /* each worker warmed every batch size 1..8 */
    item *items = calloc(P * N, sizeof(item));
    CHECK(items);
    for (int i = 0; i < P * N; i++) {
        items[i].in[0] = (float)i;
        items[i].in[3] = (float)-i;
        items[i].in[1] = (float)(i % 7);
        items[i].in[2] = (float)(i % 5);
        if (i % 3) { /* mixed batches: some items want no tap, others tap 0 or 1 */
            items[i].qi.tap = i % 3 - 1;
            items[i].qi.tap_out = items[i].tap;
        }
        items[i].qi.input = items[i].in;
        items[i].qi.output = items[i].out;
        items[i].qi.done = on_done;
    }
    atomic_store(&g_done, 0);
    pthread_t th[P];
    producer pr[P];
    for (int t = 0; t < P; t++) {
        pr[t] = (producer){q, items + t * N, N};
        CHECK(pthread_create(&th[t], NULL, produce, &pr[t]) == 0);
    }
    for (int t = 0; t < P; t++)
        pthread_join(th[t], NULL);
    wait_done(P * N);
    for (int i = 0; i < P * N; i++) {
        CHECK(atomic_load(&items[i].done) == 1);
        CHECK(items[i].qi.status == QUEUE_ITEM_OK);
        CHECK(items[i].out[0] == 2.0f * (float)i);
        CHECK(items[i].out[1] == (float)-i + 1);
        if (i % 3)
            CHECK(items[i].tap[0] == (i % 3 == 1 ? (float)(i % 7) * 3 : (float)(i % 5) - 1));
    }
    CHECK(atomic_load(&f.max_seen) <= 8);
    CHECK(atomic_load(&f.images) == P * N + 2 * 36);
    CHECK(queue_depth(q) == 0);
    queue_close(q);
    workers_join(b);
    queue_destroy(q);
    free(items);
}

/* Full queue refuses immediately and all-or-nothing; too many is its own error. */
static void test_full(void) {
    queue *q = queue_create(3, NULL, NULL);
    CHECK(q);
    item it[5];
    queue_item *ptr[5];
    memset(it, 0, sizeof it);
    for (int i = 0; i < 5; i++)
        ptr[i] = &it[i].qi;
    CHECK(queue_push(q, ptr, 2) == QUEUE_OK);
    CHECK(queue_push(q, ptr + 2, 2) == QUEUE_FULL);
    CHECK(queue_depth(q) == 2);
    CHECK(queue_push(q, ptr + 2, 1) == QUEUE_OK);
    CHECK(queue_push(q, ptr + 3, 1) == QUEUE_FULL);
    CHECK(queue_push(q, ptr, 5) == QUEUE_TOO_MANY);
    queue_item *out[8];
    CHECK(queue_take_batch(q, out, 8, 0) == 3);
    CHECK(out[0] == ptr[0] && out[1] == ptr[1] && out[2] == ptr[2]); /* FIFO */
    queue_close(q);
    CHECK(queue_push(q, ptr, 1) == QUEUE_CLOSED);
    CHECK(queue_take_batch(q, out, 8, 0) == 0);
    queue_destroy(q);
}

/* A lone item waits about batch_timeout for announced company, not longer,
 * and not at all when nothing is announced. */
static void test_timeout(void) {
    queue *q = queue_create(8, NULL, NULL);
    CHECK(q);
    item it;
    memset(&it, 0, sizeof it);
    queue_item *p = &it.qi;
    queue_expect(q, 1); /* another request is on its way: wait for it */
    CHECK(queue_push(q, &p, 1) == QUEUE_OK);
    queue_item *out[4];
    int64_t t0 = queue_now_ns();
    CHECK(queue_take_batch(q, out, 4, 50 * 1000000LL) == 1);
    int64_t dt = queue_now_ns() - t0;
    CHECK(dt >= 40 * 1000000LL && dt < 2000 * 1000000LL);
    /* nothing on its way: a lone item does not wait for company */
    queue_expect(q, -1);
    CHECK(queue_push(q, &p, 1) == QUEUE_OK);
    t0 = queue_now_ns();
    CHECK(queue_take_batch(q, out, 4, 2000 * 1000000LL) == 1);
    CHECK(queue_now_ns() - t0 < 1000 * 1000000LL);
    queue_close(q);
    queue_destroy(q);
}

/* queue_push_announced withdraws the pusher's own announcement in the push,
 * whatever the push returns: a lone announced request is taken at once (no
 * batch_timeout wait for company), another request's announcement still
 * holds the batch open, and a refused push withdraws too. */
static void test_push_announced(void) {
    queue *q = queue_create(2, NULL, NULL);
    CHECK(q);
    item it[3];
    memset(it, 0, sizeof it);
    queue_item *p[3] = {&it[0].qi, &it[1].qi, &it[2].qi}, *out[4];
    const int64_t long_wait = 60000 * 1000000LL; /* a missed withdrawal would wait this long */
    queue_expect(q, 1);
    CHECK(queue_push_announced(q, p, 1, 1) == QUEUE_OK);
    int64_t t0 = queue_now_ns();
    CHECK(queue_take_batch(q, out, 4, long_wait) == 1 && out[0] == p[0]);
    CHECK(queue_now_ns() - t0 < 30000 * 1000000LL);
    /* two announced: the first push leaves the other one standing */
    queue_expect(q, 1);
    queue_expect(q, 1);
    CHECK(queue_push_announced(q, p, 1, 1) == QUEUE_OK);
    t0 = queue_now_ns();
    CHECK(queue_take_batch(q, out, 4, 50 * 1000000LL) == 1);
    CHECK(queue_now_ns() - t0 >= 40 * 1000000LL); /* it waited for the announced company */
    /* the second is refused (too many for the queue), and withdrawn all the same */
    CHECK(queue_push_announced(q, p, 3, 1) == QUEUE_TOO_MANY);
    CHECK(queue_push(q, p, 1) == QUEUE_OK);
    t0 = queue_now_ns();
    CHECK(queue_take_batch(q, out, 4, long_wait) == 1);
    CHECK(queue_now_ns() - t0 < 30000 * 1000000LL);
    /* a full queue refuses, and withdraws */
    CHECK(queue_push(q, p, 2) == QUEUE_OK);
    queue_expect(q, 1);
    CHECK(queue_push_announced(q, p + 2, 1, 1) == QUEUE_FULL);
    CHECK(queue_depth(q) == 2);
    t0 = queue_now_ns();
    CHECK(queue_take_batch(q, out, 4, long_wait) == 2 && out[0] == p[0] && out[1] == p[1]);
    CHECK(queue_now_ns() - t0 < 30000 * 1000000LL);
    queue_close(q);
    queue_destroy(q);
}

/* Expired items never reach the engine; abort finishes the rest as ABORTED. */
static void test_deadline_abort(void) {
    fake f = {0};
    queue *q = queue_create(16, NULL, NULL);
    CHECK(q);
    workers_pool *b = start(&f, q, 1, 4, 0);
    int runs0 = atomic_load(&f.images);
    item it[4];
    queue_item *ptr[4];
    memset(it, 0, sizeof it);
    atomic_store(&g_done, 0);
    for (int i = 0; i < 4; i++) {
        it[i].qi.input = it[i].in;
        it[i].qi.output = it[i].out;
        it[i].qi.done = on_done;
        it[i].qi.deadline_ns = queue_now_ns() - 1; /* already past */
        ptr[i] = &it[i].qi;
    }
    CHECK(queue_push(q, ptr, 4) == QUEUE_OK);
    wait_done(4);
    for (int i = 0; i < 4; i++)
        CHECK(it[i].qi.status == QUEUE_ITEM_EXPIRED);
    CHECK(atomic_load(&f.images) == runs0);
    workers_abort(b);
    atomic_store(&g_done, 0);
    for (int i = 0; i < 4; i++)
        it[i].qi.deadline_ns = 0;
    CHECK(queue_push(q, ptr, 4) == QUEUE_OK);
    wait_done(4);
    for (int i = 0; i < 4; i++)
        CHECK(it[i].qi.status == QUEUE_ITEM_ABORTED);
    queue_close(q);
    workers_join(b);
    queue_destroy(q);
}

/* A batch whose tap cannot be copied: the items that asked for taps fail,
 * the others still get their output (the batch is run again without taps). */
static void test_tap_failure(void) {
    fake f = {0};
    queue *q = queue_create(8, NULL, NULL);
    CHECK(q);
    workers_pool *b = start(&f, q, 1, 4, 2000000000LL); /* the batch fills to 4 */
    item it[4];
    queue_item *ptr[4];
    memset(it, 0, sizeof it);
    for (int i = 0; i < 4; i++) {
        it[i].in[0] = (float)(i + 1);
        it[i].qi.input = it[i].in;
        it[i].qi.output = it[i].out;
        it[i].qi.done = on_done;
        ptr[i] = &it[i].qi;
    }
    it[1].qi.tap = 7;
    it[1].qi.tap_out = it[1].tap;
    it[2].qi.tap = 0;
    it[2].qi.tap_out = it[2].tap;
    atomic_store(&g_done, 0);
    CHECK(queue_push(q, ptr, 4) == QUEUE_OK);
    wait_done(4);
    CHECK(it[0].qi.status == QUEUE_ITEM_OK && it[0].out[0] == 2.0f);
    CHECK(it[3].qi.status == QUEUE_ITEM_OK && it[3].out[0] == 8.0f);
    CHECK(it[1].qi.status == QUEUE_ITEM_FAILED && it[2].qi.status == QUEUE_ITEM_FAILED);
    queue_close(q);
    workers_join(b);
    queue_destroy(q);
}

/* Items whose client is gone never reach the engine (QUEUE_ITEM_CANCELLED);
 * the others of the same batches run with their right outputs. */
static void test_cancel(void) {
    fake f = {0};
    queue *q = queue_create(64, NULL, NULL);
    CHECK(q);
    workers_pool *b = start(&f, q, 1, 8, 0);
    int images0 = atomic_load(&f.images);
    enum { N = 32 };
    item it[N];
    queue_item *ptr[N];
    memset(it, 0, sizeof it);
    atomic_store(&g_done, 0);
    for (int i = 0; i < N; i++) {
        it[i].in[0] = (float)i;
        it[i].qi.input = it[i].in;
        it[i].qi.output = it[i].out;
        it[i].qi.done = on_done;
        it[i].qi.alive = i % 3 ? item_alive : NULL; /* NULL: always alive */
        atomic_store(&it[i].gone, i % 3 == 1);
        ptr[i] = &it[i].qi;
    }
    CHECK(queue_push(q, ptr, N) == QUEUE_OK);
    wait_done(N);
    int cancelled = 0;
    for (int i = 0; i < N; i++) {
        CHECK(atomic_load(&it[i].done) == 1);
        if (i % 3 == 1) {
            CHECK(it[i].qi.status == QUEUE_ITEM_CANCELLED);
            cancelled++;
        } else {
            CHECK(it[i].qi.status == QUEUE_ITEM_OK);
            CHECK(it[i].out[0] == 2.0f * (float)i);
        }
        if (i % 3)
            CHECK(atomic_load(&it[i].alive_calls) == 1);
    }
    CHECK(atomic_load(&f.images) - images0 == N - cancelled);
    queue_close(q);
    workers_join(b);
    queue_destroy(q);
}

/* A full queue drops the queued items whose client is gone to make room,
 * finishing them as CANCELLED (head, middle and tail); when all are alive it
 * refuses as before and finishes nothing. */
static void test_full_prune(void) {
    queue *q = queue_create(4, NULL, NULL);
    CHECK(q);
    item it[6];
    queue_item *ptr[6];
    memset(it, 0, sizeof it);
    atomic_store(&g_done, 0);
    for (int i = 0; i < 6; i++) {
        it[i].qi.done = on_done;
        it[i].qi.alive = item_alive;
        ptr[i] = &it[i].qi;
    }
    CHECK(queue_push(q, ptr, 4) == QUEUE_OK);
    CHECK(queue_push(q, ptr + 4, 1) == QUEUE_FULL); /* every one alive */
    CHECK(atomic_load(&g_done) == 0);
    atomic_store(&it[0].gone, 1);
    atomic_store(&it[3].gone, 1);
    CHECK(queue_push(q, ptr + 4, 1) == QUEUE_OK); /* the head and the tail pruned */
    CHECK(atomic_load(&g_done) == 2);
    CHECK(it[0].qi.status == QUEUE_ITEM_CANCELLED && it[3].qi.status == QUEUE_ITEM_CANCELLED);
    CHECK(queue_depth(q) == 3);
    CHECK(queue_push(q, ptr + 5, 1) == QUEUE_OK);
    CHECK(queue_push(q, ptr + 3, 1) == QUEUE_FULL); /* all alive again: refused */
    CHECK(atomic_load(&g_done) == 2 && queue_depth(q) == 4);
    queue_item *out[8];
    CHECK(queue_take_batch(q, out, 8, 0) == 4);
    CHECK(out[0] == ptr[1] && out[1] == ptr[2] && out[2] == ptr[4] && out[3] == ptr[5]);
    queue_close(q);
    queue_destroy(q);
}

int main(void) {
    test_tap_failure();
    test_full();
    test_full_prune();
    test_cancel();
    test_timeout();
    test_push_announced();
    test_deadline_abort();
    test_concurrent();
    printf("test_workers: ok\n");
    return 0;
}
