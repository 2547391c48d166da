/*
 * linger.h — lingering close (nginx's reference behaviour) for connections
 * answered before their request body was read (413, 503 over budget, 400
 * framing errors).
 *
 * Why: closing a socket that still has unread client bytes makes the kernel
 * send a TCP reset, and a client that writes its whole body before reading
 * (Python's urllib, curl without Expect) then loses the answer already
 * delivered to it and sees "connection reset" / "broken pipe" instead of the
 * JSON error. So the answer is sent, our side is shut for writing (FIN after
 * the answer), and the socket is handed here: one thread reads and discards
 * what the client still sends, then closes.
 *
 * Bounds (nothing is ever buffered: reads go to one 64 KiB scratch buffer):
 *   LINGER_MS          10 s  per socket in total (nginx: lingering_time 30 s)
 *   LINGER_MAX_BYTES   64 MiB discarded per socket
 *   LINGER_MAX_SOCKETS 256   sockets lingering at once; past it a socket is
 *                            closed at once (the client may then see a reset)
 * A socket is closed at the first of: client EOF, error, a bound reached.
 */
#ifndef RESNETD_LINGER_H
#define RESNETD_LINGER_H

#define LINGER_MS 10000
#define LINGER_MAX_BYTES (64u << 20)
#define LINGER_MAX_SOCKETS 256

typedef struct linger_pool linger_pool;

/* Starts the lingering thread. NULL on failure (then callers just close). */
linger_pool *linger_start(void);

/* Takes over fd (a connected socket whose answer is already sent): reads and
 * discards until EOF or a bound, then closes it. Closes fd at once when the
 * pool is NULL or full. Any thread. */
void linger_add(linger_pool *p, int fd);

/* Stops the thread and closes every lingering socket. NULL is a no-op. */
void linger_stop(linger_pool *p);

#endif
