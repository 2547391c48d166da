/*
 * grpc_internal.h — between the transport (grpc_server.c: connections,
 * HTTP/2 streams, the event loop) and the service (grpc_service.c: what
 * each RPC answers). Everything here lives on the event-loop thread except
 * the call's `b.gone` flag (reqbase.h) and the completion list (grpc_server_wake).
 */
#ifndef RESNETD_GRPC_INTERNAL_H
#define RESNETD_GRPC_INTERNAL_H

#include "app.h"
#include "grpc_frame.h"
#include "reqbase.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct grpc_server grpc_server;
typedef struct gconn gconn;
typedef struct gstream gstream;
typedef struct grpc_call grpc_call;

/* The RPCs (":path" /inference.GRPCInferenceService/<name>). */
typedef enum {
    GM_UNKNOWN = 0,
    GM_SERVER_LIVE,
    GM_SERVER_READY,
    GM_MODEL_READY,
    GM_SERVER_METADATA,
    GM_MODEL_METADATA,
    GM_MODEL_INFER,
    GM_MODEL_STREAM_INFER,
    GM_MODEL_STATISTICS,
    GM_MODEL_CONFIG,
    GM_REPOSITORY_INDEX,
    GM_REPOSITORY_LOAD,
    GM_REPOSITORY_UNLOAD,
} grpc_method;

struct gstream {
    gconn *c;
    int32_t id;
    gstream *prev, *next; /* the connection's streams */
    grpc_method method;
    char path[128];     /* as sent (cut), for the access log */
    int path_ok;        /* :method POST, :path present */
    int ct_ok;          /* content-type application/grpc[+proto|;...] */
    int enc_identity;   /* grpc-encoding absent or identity */
    char enc[32];       /* grpc-encoding as sent (cut) */
    int auth_ok;        /* authorization carries the api_key (or none is needed) */
    int bad_timeout;    /* grpc-timeout present but malformed */
    int64_t timeout_ns; /* grpc-timeout, -1 = none (0: the deadline is now) */
    size_t hdr_bytes;   /* header list bytes so far (name + value + 32 each) */
    char rid[72];       /* x-request-id when printable and short, else generated */
    int64_t t0_ns;
    int64_t t_last; /* last header or DATA byte of the request, or the answer */
    /* the request message */
    uint8_t pre[GRPC_PREFIX];
    int npre;
    int have_len;
    uint32_t len;
    uint8_t *msg; /* len bytes (reserved in the budget: msg_reserved) */
    size_t got;
    uint64_t msg_reserved;
    int nmsgs;       /* complete messages */
    int discard;     /* answered early: further DATA is dropped */
    int dispatched;  /* handed to the service */
    grpc_call *call; /* ModelInfer in flight (owned by the call) */
    /* the message model_infer takes (moved from msg, or a stream's next) */
    uint8_t *dmsg;
    size_t dlen;
    uint64_t dreserved;
    /* ModelStreamInfer: messages wait in `pending` and run one at a time;
     * each answer is appended to `out` as it comes */
    int streaming;
    struct gmsg *pending, **pending_tail;
    int npending;
    uint64_t pending_bytes;
    int remote_done;  /* the client's END_STREAM */
    int resp_started; /* response headers submitted */
    int out_done;     /* no more answers: trailers once out is sent */
    int deferred;     /* the data provider waits for output */
    /* the answer */
    int answered; /* a response was submitted */
    int status;   /* gRPC status */
    char message[512];
    int model; /* for metrics and the access log, -1 none */
    int images;
    uint8_t *out; /* prefix + message */
    size_t out_len, out_off;
    uint64_t out_reserved;
    int counted;
    int from_base; /* its state is in the connection's base, not the budget */
    int admitted;  /* ModelInfer: holds a count in app.work from its HEADERS, which came
                    * before any drain (an accepted call, like an HTTP upload); moved to
                    * the call, or dropped when answered or freed */
};

struct grpc_call {
    req_base b; /* first: the shared request (b.r is NULL) */
    grpc_server *srv;
    gstream *s;   /* NULL once the stream is gone (loop thread only) */
    uint8_t *msg; /* the serialized request (moved from the stream) */
    size_t msg_len;
    uint64_t msg_reserved;
    struct Inference__ModelInferRequest *req; /* unpacked (grpc_service.c) */
    struct ProtobufCAllocator *req_alloc;     /* its bounded allocator */
    uint64_t unpack_reserved;
    int classification; /* the output's classification parameter, 0 = raw */
    char out_name[128];
    /* an internal tensor (engine.h tap) named in the outputs, as on the REST
     * route: tap -1 none; the model's output is answered when out_wanted
     * (named, or no output named), before the tap unless tap_first */
    int tap, out_wanted, tap_first;
    /* RepositoryModelLoad (1) / Unload (2): no images, the registry's loader
     * thread runs it and fills ctl_status / ctl_msg before the wake */
    int control, ctl_status;
    char ctl_msg[400];
    grpc_call *next_done;
};

/* grpc_server.c: answer s. msg is the serialized response message (taken
 * over; NULL for an error answer, which is Trailers-Only); status and
 * message go into the trailers. */
void grpc_answer(gstream *s, int status, const char *message, uint8_t *msg, size_t len);
app *grpc_app(const gstream *s);
grpc_server *grpc_srv(const gstream *s);
int64_t grpc_msg_max(const grpc_server *srv);

/* grpc_server.c: appends one answer message (taken over; NULL: out of
 * memory) to a ModelStreamInfer stream, counted and logged as one request
 * of `model` with HTTP-equivalent status http since t0. */
void grpc_stream_push(gstream *s, uint8_t *msg, size_t len, int http, int model, int images,
                      int64_t t0);

/* grpc_server.c: a call starts (counted until the transport frees it). */
void grpc_server_call_add(grpc_server *srv);

/* grpc_server.c: the call's images are back (any thread). */
void grpc_server_wake(req_base *b);

/* grpc_service.c: which RPC a path names. */
grpc_method grpc_method_of(const char *path, size_t len);
/* grpc_service.c: whether the RPC is open without a token (health checks). */
int grpc_method_open(grpc_method m);
/* grpc_service.c: a complete unary request (s->msg, s->len bytes) arrived. */
void grpc_dispatch(gstream *s);
/* grpc_service.c: a ModelInfer call came back; s is NULL when its stream
 * is gone. Frees nothing; the transport frees the call. */
void grpc_call_finish(grpc_call *c, gstream *s);
/* grpc_service.c: frees what the service attached to the call. */
void grpc_call_free_service(grpc_call *c);

#endif
