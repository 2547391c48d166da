/*
 * budget.h — the server-wide budget for bytes in flight: request bodies being
 * received, images being decoded (their worst case, known from the header
 * before any pixel buffer exists), input/output tensors and answers.
 *
 * DESIGN: one atomic counter against one limit (max_inflight_bytes). A caller
 * reserves before it allocates and releases what it reserved when the memory
 * is freed; a reservation that would pass the limit fails at once (the
 * caller answers 503 + Retry-After), so memory never grows past the limit
 * because of client input. Reservations never block and never wait. Thread-
 * safe and lock-free; the counter and a high-water mark are exported as
 * metrics by whoever owns the budget.
 */
#ifndef RESNETD_BUDGET_H
#define RESNETD_BUDGET_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct {
    uint64_t limit;
    _Atomic uint64_t used;
    _Atomic uint64_t peak;     /* highest `used` seen */
    _Atomic uint64_t refusals; /* reservations refused */
} budget;

/* Sets the limit and zeroes the counters. */
void budget_init(budget *b, uint64_t limit);

/* Reserves n bytes: 0 on success, -1 (nothing reserved, a refusal counted)
 * when used + n would pass the limit. n == 0 always succeeds. */
int budget_reserve(budget *b, uint64_t n);

/* Returns n bytes reserved earlier (asserts it never goes below zero). */
void budget_release(budget *b, uint64_t n);

/* Bytes reserved now. */
uint64_t budget_used(const budget *b);

#endif
