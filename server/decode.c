/* decode.c — the decode pool (design in decode.h). */
#include "decode.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Decode threads run at nice +10 (Linux: setpriority on a thread id applies
 * to that thread only). Under CPU contention the HTTP threads (health checks,
 * answers) and the inference workers (work already accepted) go first; a
 * waking HTTP thread preempts a decode at once instead of waiting for its
 * time slice. Decoding honest images needs a small share of a core, so the
 * cost is nil without contention and small with it. */
#define DECODE_NICE 10

struct decode_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    decode_job *head, *tail;
    int waiting, max_waiting;
    int stopping;
    int nthreads;
    pthread_t *threads;
};

static void *worker(void *arg) {
    decode_pool *p = arg;
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), DECODE_NICE); /* best effort */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        decode_job *j = p->head;
        if (!j)
            break; /* stopping and nothing left */
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->waiting--;
        int aborted = p->stopping;
        pthread_mutex_unlock(&p->mu);
        j->run(j, aborted);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

decode_pool *decode_start(int threads, int max_waiting, char *err, size_t err_len) {
    decode_pool *p = calloc(1, sizeof(*p));
    if (threads < 1)
        threads = 1;
    if (p)
        p->threads = calloc((size_t)threads, sizeof(pthread_t));
    if (!p || !p->threads) {
        free(p);
        snprintf(err, err_len, "decode pool: out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->max_waiting = max_waiting < 1 ? 1 : max_waiting;
    for (; p->nthreads < threads; p->nthreads++)
        if (pthread_create(&p->threads[p->nthreads], NULL, worker, p)) {
            snprintf(err, err_len, "decode pool: cannot start thread %d", p->nthreads);
            decode_stop(p);
            return NULL;
        }
    return p;
}

int decode_submit(decode_pool *p, decode_job *j) {
    pthread_mutex_lock(&p->mu);
    int ok = !p->stopping && p->waiting < p->max_waiting;
    if (ok) {
        j->next = NULL;
        if (p->tail)
            p->tail->next = j;
        else
            p->head = j;
        p->tail = j;
        p->waiting++;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return ok ? 0 : -1;
}

void decode_stop(decode_pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
