/* queue.c — the bounded per-model queue and batch formation (design in queue.h). */
#include "queue.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct queue {
    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t cv;    /* signalled on push and close */
    pthread_mutex_t form; /* held by the one worker forming a batch */
    queue_item *head, *tail;
    int depth, capacity, closed, flushing;
    int expected; /* requests announced by queue_expect, not yet pushed */
    void (*on_depth)(void *, int);
    void *arg;
};

int64_t queue_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

queue *queue_create(int capacity, void (*on_depth)(void *arg, int delta), void *arg) {
    queue *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&q->mu, NULL) || pthread_mutex_init(&q->form, NULL) ||
        pthread_cond_init(&q->cv, &ca)) {
        pthread_condattr_destroy(&ca);
        free(q);
        return NULL;
    }
    pthread_condattr_destroy(&ca);
    q->capacity = capacity;
    q->on_depth = on_depth;
    q->arg = arg;
    return q;
}

void queue_destroy(queue *q) {
    if (!q)
        return;
    pthread_mutex_destroy(&q->mu);
    pthread_mutex_destroy(&q->form);
    pthread_cond_destroy(&q->cv);
    free(q);
}

static void depth_change(queue *q, int delta) {
    q->depth += delta;
    if (q->on_depth)
        q->on_depth(q->arg, delta);
}

/* A full queue first drops the items whose client is gone, looking at no
 * more than PRUNE_SCAN of the oldest (the likeliest to have been left): a
 * refused push costs a bounded number of alive calls. Unlinked items are
 * returned as a list (through next) to be finished outside the lock. */
#define PRUNE_SCAN 64

static queue_item *prune(queue *q) {
    queue_item *dead = NULL, **tail = &dead, **pp = &q->head, *prev = NULL;
    int removed = 0;
    for (int seen = 0; *pp && seen < PRUNE_SCAN; seen++) {
        queue_item *it = *pp;
        if (it->alive && !it->alive(it)) {
            *pp = it->next;
            if (q->tail == it)
                q->tail = prev;
            it->next = NULL;
            *tail = it;
            tail = &it->next;
            removed++;
        } else {
            prev = it;
            pp = &it->next;
        }
    }
    if (removed)
        depth_change(q, -removed);
    return dead;
}

queue_status queue_push(queue *q, queue_item **items, int n) {
    return queue_push_announced(q, items, n, 0);
}

queue_status queue_push_announced(queue *q, queue_item **items, int n, int announced) {
    int64_t now = queue_now_ns();
    pthread_mutex_lock(&q->mu);
    queue_status st = QUEUE_OK;
    q->expected -= announced;
    queue_item *dead = NULL;
    if (!q->closed && n <= q->capacity && q->depth + n > q->capacity)
        dead = prune(q);
    if (n > q->capacity)
        st = QUEUE_TOO_MANY;
    else if (q->closed)
        st = QUEUE_CLOSED;
    else if (q->depth + n > q->capacity)
        st = QUEUE_FULL;
    else {
        for (int i = 0; i < n; i++) {
            items[i]->next = NULL;
            items[i]->enqueue_ns = now;
            if (q->tail)
                q->tail->next = items[i];
            else
                q->head = items[i];
            q->tail = items[i];
        }
        depth_change(q, n);
    }
    /* a push wakes the former; so does a withdrawal that leaves nothing on its way */
    if (st == QUEUE_OK || (announced && q->expected <= 0))
        pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    while (dead) { /* done may free the item: read the link first */
        queue_item *next = dead->next;
        dead->status = QUEUE_ITEM_CANCELLED;
        dead->done(dead);
        dead = next;
    }
    return st;
}

static queue_item *pop(queue *q) {
    queue_item *it = q->head;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    it->next = NULL;
    depth_change(q, -1);
    return it;
}

int queue_take_batch(queue *q, queue_item **out, int max, int64_t batch_timeout_ns) {
    int n = 0;
    pthread_mutex_lock(&q->form);
    pthread_mutex_lock(&q->mu);
    while (n == 0) {
        while (!q->head && !q->closed)
            pthread_cond_wait(&q->cv, &q->mu);
        if (!q->head)
            break; /* closed and empty */
        /* Items stay queued (and counted in the depth) while the batch fills. */
        int64_t until = q->head->enqueue_ns + batch_timeout_ns;
        while (q->depth < max && q->expected > 0 && !q->closed && !q->flushing) {
            if (queue_now_ns() >= until)
                break;
            struct timespec ts = {(time_t)(until / 1000000000), (long)(until % 1000000000)};
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        }
        /* a full queue_push may have dropped every queued item meanwhile */
        while (n < max && q->head)
            out[n++] = pop(q);
    }
    pthread_mutex_unlock(&q->mu);
    pthread_mutex_unlock(&q->form);
    return n;
}

void queue_expect(queue *q, int delta) {
    pthread_mutex_lock(&q->mu);
    q->expected += delta;
    if (q->expected <= 0)
        pthread_cond_broadcast(&q->cv); /* a former waiting for company stops waiting */
    pthread_mutex_unlock(&q->mu);
}

void queue_flush(queue *q) {
    pthread_mutex_lock(&q->mu);
    q->flushing = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void queue_close(queue *q) {
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

int queue_depth(queue *q) {
    pthread_mutex_lock(&q->mu);
    int d = q->depth;
    pthread_mutex_unlock(&q->mu);
    return d;
}
