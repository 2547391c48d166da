/* proto.c — request plumbing for the protocol families (design in proto.h). */
#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int proto_bind(req_base *b, const char *name, size_t len, long version) {
    return reqbase_bind(b, name, len, version);
}

void proto_respond(proto_req *p, int status, const char *content_type, char *body, size_t len,
                   const char *const *extra) {
    reqbase_respond(&p->b, status, content_type, body, len, extra);
}

void proto_on_body(req_base *b) {
    proto_req *p = (proto_req *)b;
    if (p->on_body)
        p->on_body(p);
}

void proto_on_free(req_base *b) {
    proto_req *p = (proto_req *)b;
    if (p->state_free)
        p->state_free(p->state);
}

int proto_gate(proto_req *p, const char **msg) {
    const char *code;
    return reqbase_accept(&p->b, &code, msg);
}

/* req_base's callbacks to proto_req's: req_base is its first member. */
static int prepare_hook(req_base *b) {
    proto_req *p = (proto_req *)b;
    return p->prepare(p);
}

static void finish_hook(req_base *b) {
    proto_req *p = (proto_req *)b;
    p->finish(p);
}

void proto_submit(proto_req *p, int (*prepare)(proto_req *p), void (*finish)(proto_req *p)) {
    p->prepare = prepare;
    p->finish = finish;
    reqbase_submit(&p->b, prepare ? prepare_hook : NULL, finish_hook);
}

int proto_result(const proto_req *p, const char **msg) {
    const char *code;
    return reqbase_result(&p->b, &code, msg);
}
