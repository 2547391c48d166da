/* linger.c — lingering close: read and discard, bounded, then close (linger.h). */
#include "linger.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd; /* -1: free slot */
    int64_t deadline_ns;
    size_t discarded;
} lsock;

struct linger_pool {
    pthread_t thread;
    int ep, stop_fd;
    pthread_mutex_t mu; /* guards socks */
    lsock socks[LINGER_MAX_SOCKETS];
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Closes slot i (mu held). */
static void drop(linger_pool *p, int i) {
    epoll_ctl(p->ep, EPOLL_CTL_DEL, p->socks[i].fd, NULL);
    close(p->socks[i].fd);
    p->socks[i].fd = -1;
}

/* Reads and discards what fd has; 1 when the socket is done (EOF, error,
 * byte bound), 0 when it may send more. */
static int drain(lsock *s) {
    static _Thread_local char scratch[65536];
    for (;;) {
        ssize_t n = read(s->fd, scratch, sizeof scratch);
        if (n > 0) {
            s->discarded += (size_t)n;
            if (s->discarded >= LINGER_MAX_BYTES)
                return 1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
}

static void *run(void *arg) {
    linger_pool *p = arg;
    struct epoll_event ev[64];
    for (;;) {
        int n = epoll_wait(p->ep, ev, 64, 200);
        pthread_mutex_lock(&p->mu);
        for (int e = 0; e < n; e++) {
            if (ev[e].data.u32 == (uint32_t)LINGER_MAX_SOCKETS) { /* the stop event */
                for (int i = 0; i < LINGER_MAX_SOCKETS; i++)
                    if (p->socks[i].fd >= 0)
                        drop(p, i);
                pthread_mutex_unlock(&p->mu);
                return NULL;
            }
            int i = (int)ev[e].data.u32;
            if (p->socks[i].fd >= 0 && drain(&p->socks[i]))
                drop(p, i);
        }
        int64_t now = now_ns();
        for (int i = 0; i < LINGER_MAX_SOCKETS; i++)
            if (p->socks[i].fd >= 0 && now >= p->socks[i].deadline_ns)
                drop(p, i);
        pthread_mutex_unlock(&p->mu);
    }
}

linger_pool *linger_start(void) {
    linger_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    for (int i = 0; i < LINGER_MAX_SOCKETS; i++)
        p->socks[i].fd = -1;
    p->ep = epoll_create1(EPOLL_CLOEXEC);
    p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = LINGER_MAX_SOCKETS};
    if (p->ep < 0 || p->stop_fd < 0 || epoll_ctl(p->ep, EPOLL_CTL_ADD, p->stop_fd, &ev) ||
        pthread_mutex_init(&p->mu, NULL)) {
        if (p->ep >= 0)
            close(p->ep);
        if (p->stop_fd >= 0)
            close(p->stop_fd);
        free(p);
        return NULL;
    }
    if (pthread_create(&p->thread, NULL, run, p)) {
        pthread_mutex_destroy(&p->mu);
        close(p->ep);
        close(p->stop_fd);
        free(p);
        return NULL;
    }
    return p;
}

void linger_add(linger_pool *p, int fd) {
    if (!p) {
        close(fd);
        return;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        close(fd);
        return;
    }
    pthread_mutex_lock(&p->mu);
    int i = 0;
    while (i < LINGER_MAX_SOCKETS && p->socks[i].fd >= 0)
        i++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
    if (i == LINGER_MAX_SOCKETS || epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev)) {
        close(fd); /* full: a plain close (the client may see a reset) */
    } else {
        p->socks[i] = (lsock){fd, now_ns() + (int64_t)LINGER_MS * 1000000, 0};
    }
    pthread_mutex_unlock(&p->mu);
}

void linger_stop(linger_pool *p) {
    if (!p)
        return;
    uint64_t one = 1;
    if (write(p->stop_fd, &one, sizeof one) != (ssize_t)sizeof one)
        abort(); /* an eventfd write of 1 cannot fail */
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    close(p->ep);
    close(p->stop_fd);
    free(p);
}
