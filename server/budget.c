/* budget.c — the server-wide bytes-in-flight budget (design in budget.h). */
#include "budget.h"

#include <assert.h>

void budget_init(budget *b, uint64_t limit) {
    b->limit = limit;
    atomic_store(&b->used, 0);
    atomic_store(&b->peak, 0);
    atomic_store(&b->refusals, 0);
}

int budget_reserve(budget *b, uint64_t n) {
    if (n == 0)
        return 0;
    uint64_t cur = atomic_load_explicit(&b->used, memory_order_relaxed);
    do {
        if (n > b->limit || cur > b->limit - n) {
            atomic_fetch_add_explicit(&b->refusals, 1, memory_order_relaxed);
            return -1;
        }
    } while (!atomic_compare_exchange_weak_explicit(&b->used, &cur, cur + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    uint64_t now = cur + n, peak = atomic_load_explicit(&b->peak, memory_order_relaxed);
    while (now > peak && !atomic_compare_exchange_weak_explicit(
                             &b->peak, &peak, now, memory_order_relaxed, memory_order_relaxed))
        ;
    return 0;
}

void budget_release(budget *b, uint64_t n) {
    uint64_t before = atomic_fetch_sub_explicit(&b->used, n, memory_order_relaxed);
    assert(before >= n);
    (void)before;
}

uint64_t budget_used(const budget *b) {
    return atomic_load_explicit(&((budget *)b)->used, memory_order_relaxed);
}
