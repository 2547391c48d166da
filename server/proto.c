/* proto.c — request plumbing for the protocol families (design in proto.h). */
#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int proto_owns(const char *path) {
    return !strcmp(path, "/") || !strncmp(path, "/demo/", 6) || !strcmp(path, "/v2") ||
           !strncmp(path, "/v2/", 4) || !strcmp(path, "/ping") ||
           !strncmp(path, "/predictions/", 13);
}

int proto_bind(req_base *b, const char *name, size_t len, long version) {
    return reqbase_bind(b, name, len, version);
}

void proto_respond(proto_req *p, int status, const char *content_type, char *body, size_t len,
                   const char *const *extra) {
    reqbase_respond(&p->b, status, content_type, body, len, extra);
}

void proto_on_headers(http_req *r, void *cls) {
    proto_req *p = reqbase_new(cls, r, sizeof *p);
    if (!p)
        return;
    const char *path = http_path(r);
    if (!strncmp(path, "/v2", 3))
        routes_v2_on_headers(p);
    else if (!strcmp(path, "/ping") || !strncmp(path, "/predictions/", 13))
        routes_ts_on_headers(p);
    else
        routes_demo_on_headers(p);
}

void proto_on_body(http_req *r, void *cls) {
    proto_req *p = http_user(r);
    (void)cls;
    if (p && p->on_body)
        p->on_body(p);
}

void proto_on_complete(http_req *r, void *cls) {
    proto_req *p = http_user(r);
    int status = http_status(r), had = p != NULL;
    if (p) {
        reqbase_done(&p->b, status);
        if (p->state_free)
            p->state_free(p->state);
        free(p);
    }
    reqbase_end(cls, had, status);
}

int proto_gate(proto_req *p, const char **msg) {
    const char *code;
    int st = reqbase_gate(&p->b, &code, msg);
    if (!st)
        reqbase_expect(&p->b, 1); /* its images are on their way */
    return st;
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
