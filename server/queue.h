/*
 * queue.h — a bounded queue of images waiting for inference, one per model.
 *
 * DESIGN. The decode pool (decode.h) decodes and preprocesses an upload into
 * tensors, then pushes all of a request's images at once (all or nothing: a request never
 * half-enters). A full queue answers at once (QUEUE_FULL -> 503); pushing
 * never blocks. Workers take batches with queue_take_batch(), which is the
 * batcher: one idle worker at a time (the "former", serialised by a second
 * mutex) waits until max_batch items are queued or batch_timeout has passed
 * since the oldest one was *queued* (an item that already waited while every
 * worker was busy does not wait again), then takes up to max_batch at once.
 * It waits only while more work is on its way: the HTTP side announces each
 * request between its headers and its push (queue_expect; the push withdraws
 * it atomically, queue_push_announced), so a lone client never pays
 * batch_timeout, nor a second wake-up, for company that cannot come.
 * Items stay in the queue while the batch fills, so the depth (and the
 * capacity that turns requests away with 503) counts every waiting image.
 * The other idle workers wait for the former to leave, so batches are as full
 * as the traffic allows and no two half-empty batches are built side by side.
 * Items are intrusive (the caller owns their memory): the queue allocates
 * nothing after creation.
 */
#ifndef RESNETD_QUEUE_H
#define RESNETD_QUEUE_H

#include <stdint.h>

typedef enum {
    QUEUE_ITEM_OK = 0,    /* output written */
    QUEUE_ITEM_EXPIRED,   /* deadline passed before inference: dropped (504) */
    QUEUE_ITEM_FAILED,    /* the engine failed on its batch (500) */
    QUEUE_ITEM_ABORTED,   /* drained away at shutdown (503) */
    QUEUE_ITEM_CANCELLED, /* its client went away before its batch ran (499) */
} queue_item_status;

typedef struct queue_item {
    struct queue_item *next; /* queue-private link */
    const float *input;      /* one image's tensor; owned by the submitter */
    float *output;           /* one image's output floats, written by a worker */
    int64_t enqueue_ns;      /* set by queue_push (monotonic clock) */
    int64_t deadline_ns;     /* monotonic; 0 = none */
    queue_item_status status;
    /* Called exactly once, from a worker thread, when the item is finished
     * (whatever its status). The item may be freed inside. */
    void (*done)(struct queue_item *it);
    void *owner; /* the submitter's request */
    /* Called by a worker just before it puts the item into a batch, and by
     * a queue_push that finds the queue full (under the queue's lock: it
     * must not call into the queue) for the oldest queued items (may be
     * NULL: always alive). 0 means the client is gone: the item is finished
     * as QUEUE_ITEM_CANCELLED and never reaches the engine. Must be cheap,
     * must not block, and must be callable from any thread. */
    int (*alive)(struct queue_item *it);
    /* An internal tensor the submitter wants besides the output (engine.h,
     * engine_run_fetch): tap_out NULL = none; else tap is the model's tap
     * index and tap_out receives its per-image floats. */
    int tap;
    float *tap_out;
} queue_item;

typedef enum { QUEUE_OK = 0, QUEUE_FULL, QUEUE_CLOSED, QUEUE_TOO_MANY } queue_status;

typedef struct queue queue;

/* on_depth (may be NULL) is called under the queue lock with each change of
 * the depth, e.g. to keep a metrics gauge exact. Returns NULL when out of
 * memory. Free with queue_destroy() once no thread uses the queue. */
queue *queue_create(int capacity, void (*on_depth)(void *arg, int delta), void *arg);
void queue_destroy(queue *q); /* NULL is a no-op */

/* Monotonic clock in nanoseconds (what enqueue_ns and deadline_ns use). */
int64_t queue_now_ns(void);

/* Appends n items, or none: QUEUE_FULL when they do not all fit right now,
 * QUEUE_TOO_MANY when n exceeds the capacity, QUEUE_CLOSED after queue_close.
 * A full queue first finishes, as QUEUE_ITEM_CANCELLED, those of its oldest
 * items (at most 64) whose alive hook says 0, to make room. */
queue_status queue_push(queue *q, queue_item **items, int n);

/* queue_push that also withdraws `announced` announcements (queue_expect)
 * in the same locked step, whatever it returns: a request that announced
 * itself pushes with announced = 1, so a waiting former never sees its
 * images queued while its announcement still stands (it would wait for the
 * company of the very request it holds, then be woken a second time by the
 * withdrawal: a lone client pays two wake-ups instead of one). */
queue_status queue_push_announced(queue *q, queue_item **items, int n, int announced);

/* Blocks until at least one item is queued, then forms a batch as described
 * above into out[0..max). Returns the count, or 0 once the queue is closed
 * and empty (the worker should exit). */
int queue_take_batch(queue *q, queue_item **out, int max, int64_t batch_timeout_ns);

/* Announces (+1) or withdraws (-1) a request that is being received or
 * decoded and will push soon; batches wait to fill only while some are. */
void queue_expect(queue *q, int delta);

/* From now on batches no longer wait to fill (drain: nothing more will come
 * to fill them); pushes are still accepted. */
void queue_flush(queue *q);

/* Refuses further pushes and wakes every taker; queued items are still
 * handed out until the queue is empty. */
void queue_close(queue *q);

/* Items waiting now. */
int queue_depth(queue *q);

#endif
