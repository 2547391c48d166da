/*
 * grpc_service.c — what each RPC of inference.GRPCInferenceService answers
 * (docs/grpc.md). The control RPCs answer on the event-loop thread (small
 * messages); ModelInfer is a req_base request like /v2/models/{m}/infer:
 * its message is unpacked and checked on the decode pool (infer_prepare,
 * with the same input checks as the REST route: v2_infer.h), its images are
 * decoded there and queued with HTTP's, and grpc_call_finish builds the
 * answer with the same output bytes (raw FP32, or Triton's classification
 * strings from v2_classify_strings) as the REST route's binary outputs.
 *
 * Unpacking is bounded: protobuf-c allocates through an allocator that
 * refuses past the message's size plus GRPC_UNPACK_SLACK, reserved in the
 * budget first, so a message of small fields whose decoded form is far
 * larger than its bytes (an int64 varint is 1 byte on the wire and 8 in
 * memory) is refused instead of expanded.
 */
#include "grpc_internal.h"
#include "grpc_service.pb-c.h"
#include "v2_infer.h"
#include "proto.h"
#include "registry.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERVICE "/inference.GRPCInferenceService/"
#define V2_VERSION "1"
#define V2_PLATFORM "onnxruntime_onnx"
#define GRPC_UNPACK_SLACK (256u << 10)

static const struct {
    const char *name;
    grpc_method m;
} METHODS[] = {
    {"ServerLive", GM_SERVER_LIVE},
    {"ServerReady", GM_SERVER_READY},
    {"ModelReady", GM_MODEL_READY},
    {"ServerMetadata", GM_SERVER_METADATA},
    {"ModelMetadata", GM_MODEL_METADATA},
    {"ModelInfer", GM_MODEL_INFER},
    {"ModelStreamInfer", GM_MODEL_STREAM_INFER},
    {"ModelStatistics", GM_MODEL_STATISTICS},
    {"ModelConfig", GM_MODEL_CONFIG},
    {"RepositoryIndex", GM_REPOSITORY_INDEX},
    {"RepositoryModelLoad", GM_REPOSITORY_LOAD},
    {"RepositoryModelUnload", GM_REPOSITORY_UNLOAD},
};

grpc_method grpc_method_of(const char *path, size_t len) {
    size_t pl = sizeof SERVICE - 1;
    if (len <= pl || memcmp(path, SERVICE, pl) != 0)
        return GM_UNKNOWN;
    for (size_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++)
        if (strlen(METHODS[i].name) == len - pl && !memcmp(path + pl, METHODS[i].name, len - pl))
            return METHODS[i].m;
    return GM_UNKNOWN;
}

int grpc_method_open(grpc_method m) {
    return m == GM_SERVER_LIVE ||
           m == GM_SERVER_READY; /* health checks, as /v2/health/live and /ready */
}

/* ---- a bounded allocator for protobuf-c ---- */

typedef struct {
    uint64_t used, cap;
} unpack_limit;

typedef struct {
    size_t size;
    size_t pad;
} lim_hdr;

static void *lim_alloc(void *ud, size_t size) {
    unpack_limit *l = ud;
    uint64_t n = size + sizeof(lim_hdr);
    if (l->used + n > l->cap)
        return NULL;
    lim_hdr *h = malloc(n);
    if (!h)
        return NULL;
    h->size = size;
    l->used += n;
    return h + 1;
}

static void lim_free(void *ud, void *p) {
    unpack_limit *l = ud;
    if (!p)
        return;
    lim_hdr *h = (lim_hdr *)p - 1;
    l->used -= h->size + sizeof(lim_hdr);
    free(h);
}

/* A control RPC's request: small, unpacked on the loop thread with a cap
 * of its size plus the slack (not reserved: at most ~256 KiB, one at a
 * time). NULL when it does not parse (answered INVALID_ARGUMENT). */
static ProtobufCMessage *unpack_small(gstream *s, const ProtobufCMessageDescriptor *d,
                                      unpack_limit *l, ProtobufCAllocator *al) {
    l->used = 0;
    l->cap = (uint64_t)s->len + GRPC_UNPACK_SLACK;
    al->alloc = lim_alloc;
    al->free = lim_free;
    al->allocator_data = l;
    ProtobufCMessage *m =
        s->len > GRPC_UNPACK_SLACK ? NULL : protobuf_c_message_unpack(d, al, s->len, s->msg);
    if (!m) {
        char msg[200];
        snprintf(msg, sizeof msg, "the request message does not parse as %s", d->name);
        grpc_answer(s, GRPC_INVALID_ARGUMENT, msg, NULL, 0);
    }
    return m;
}

static void answer_msg(gstream *s, const ProtobufCMessage *m) {
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        grpc_answer(s, GRPC_INTERNAL, "out of memory", NULL, 0);
        return;
    }
    protobuf_c_message_pack(m, buf);
    grpc_answer(s, GRPC_OK, NULL, buf, len);
}

/* A version number: "" is -1 (the highest serving), digits are it, else -2. */
static long parse_version(const char *v) {
    size_t k = strspn(v, "0123456789");
    return !*v ? -1 : k && k < 16 && !v[k] ? atol(v) : -2;
}

/* A handle on the model a name (and version: "" or its number) names, or
 * NULL answered NOT_FOUND. Release it. */
static app_model *find_model(gstream *s, const char *name, const char *version) {
    app *a = grpc_app(s);
    long v = parse_version(version);
    app_model *m = v >= -1 ? registry_acquire(a, name, strlen(name), v) : NULL;
    char msg[400];
    if (!m) {
        if (version[0])
            snprintf(msg, sizeof msg, "model '%.200s' has no version '%.40s'", name, version);
        else
            snprintf(msg, sizeof msg, "unknown model '%.200s'", name);
        grpc_answer(s, GRPC_NOT_FOUND, msg, NULL, 0);
        return NULL;
    }
    s->model = m->index;
    return m;
}

static int server_ready(const app *a) {
    return registry_server_ready((app *)a);
}

static int model_ready(const app *a) {
    return atomic_load(&((app *)a)->ready) && !atomic_load(&((app *)a)->draining);
}

static void model_metadata(gstream *s, const app_model *m) {
    engine_tensor_desc in, out;
    engine_model_input_desc(m->em, 0, &in);
    engine_model_output_desc(m->em, 0, &out);
    int64_t ishape[4] = {-1, m->info.channels, m->info.height, m->info.width};
    int64_t oshape[2] = {-1, m->info.num_classes};
    Inference__ModelMetadataResponse__TensorMetadata ti =
        INFERENCE__MODEL_METADATA_RESPONSE__TENSOR_METADATA__INIT;
    Inference__ModelMetadataResponse__TensorMetadata to =
        INFERENCE__MODEL_METADATA_RESPONSE__TENSOR_METADATA__INIT;
    ti.name = (char *)in.name;
    ti.datatype = "FP32";
    ti.n_shape = 4;
    ti.shape = ishape;
    to.name = (char *)out.name;
    to.datatype = "FP32";
    to.n_shape = 2;
    to.shape = oshape;
    /* then the internal tensors an infer request may name as outputs (the
     * REST metadata's "tensors"), batch dimension -1 */
    int nt = engine_model_num_taps(m->em);
    Inference__ModelMetadataResponse__TensorMetadata *tm = calloc((size_t)nt + 1, sizeof(*tm));
    Inference__ModelMetadataResponse__TensorMetadata **tos = calloc((size_t)nt + 1, sizeof(*tos));
    engine_tensor_desc *td = calloc((size_t)nt + 1, sizeof(*td));
    if (!tm || !tos || !td) {
        free(tm);
        free(tos);
        free(td);
        grpc_answer(s, GRPC_INTERNAL, "out of memory", NULL, 0);
        return;
    }
    tos[0] = &to;
    for (int i = 0; i < nt; i++) {
        engine_model_tap_desc(m->em, i, &td[i]);
        td[i].dims[0] = -1;
        tm[i] = (Inference__ModelMetadataResponse__TensorMetadata)
            INFERENCE__MODEL_METADATA_RESPONSE__TENSOR_METADATA__INIT;
        tm[i].name = (char *)td[i].name;
        tm[i].datatype = "FP32";
        tm[i].n_shape = (size_t)td[i].ndim;
        tm[i].shape = td[i].dims;
        tos[i + 1] = &tm[i];
    }
    Inference__ModelMetadataResponse__TensorMetadata *tis[1] = {&ti};
    char ver[32];
    snprintf(ver, sizeof ver, "%ld", m->version);
    char *versions[1] = {ver};
    Inference__ModelMetadataResponse r = INFERENCE__MODEL_METADATA_RESPONSE__INIT;
    r.name = (char *)m->mc.name;
    r.n_versions = 1;
    r.versions = versions;
    r.platform = V2_PLATFORM;
    r.n_inputs = 1;
    r.inputs = tis;
    r.n_outputs = (size_t)nt + 1;
    r.outputs = tos;
    answer_msg(s, &r.base);
    free(tm);
    free(tos);
    free(td);
}

static void model_infer(gstream *s);

/* ModelStatistics from the metrics (every protocol): one model, or all when
 * the name is empty. inference_count is the images answered, execution_count
 * the engine_run calls; success counts 200 answers with the time of every
 * answered request, fail the others; queue, compute_input (decode +
 * preprocess) and compute_infer are the histograms' counts and sums. */
static void model_statistics(gstream *s, const Inference__ModelStatisticsRequest *q) {
    app *a = grpc_app(s);
    app_model *ms[512];
    int n = 0;
    if (q->name[0]) {
        if (!(ms[0] = find_model(s, q->name, q->version)))
            return;
        n = 1;
    } else
        n = registry_list(a, ms, 512);
    Inference__ModelStatistics *ms_ = calloc((size_t)n + 1, sizeof(*ms_));
    Inference__ModelStatistics **pms = calloc((size_t)n + 1, sizeof(*pms));
    Inference__InferStatistics *is = calloc((size_t)n + 1, sizeof(*is));
    Inference__StatisticDuration *d = calloc(6 * ((size_t)n + 1), sizeof(*d));
    if (!ms_ || !pms || !is || !d) {
        free(ms_), free(pms), free(is), free(d);
        for (int i = 0; i < n; i++)
            registry_release(ms[i]);
        grpc_answer(s, GRPC_INTERNAL, "out of memory", NULL, 0);
        return;
    }
    char(*vers)[32] = calloc((size_t)n + 1, sizeof(*vers));
    for (int i = 0; i < n; i++) {
        int mi = ms[i]->index;
        metrics_model_totals t;
        metrics_totals(a->metrics, mi, &t);
        Inference__StatisticDuration *di = d + 6 * i;
        for (int k = 0; k < 6; k++)
            inference__statistic_duration__init(&di[k]);
        di[0].count = t.ok;
        di[0].ns = t.ns[METRICS_H_REQUEST];
        di[1].count = t.failed;
        di[2].count = t.count[METRICS_H_QUEUE];
        di[2].ns = t.ns[METRICS_H_QUEUE];
        di[3].count = t.count[METRICS_H_PREPROCESS];
        di[3].ns = t.ns[METRICS_H_PREPROCESS];
        di[4].count = t.count[METRICS_H_INFERENCE];
        di[4].ns = t.ns[METRICS_H_INFERENCE];
        inference__infer_statistics__init(&is[i]);
        is[i].success = &di[0];
        is[i].fail = &di[1];
        is[i].queue = &di[2];
        is[i].compute_input = &di[3];
        is[i].compute_infer = &di[4];
        is[i].compute_output = &di[5];
        inference__model_statistics__init(&ms_[i]);
        ms_[i].name = (char *)ms[i]->mc.name;
        if (vers)
            snprintf(vers[i], sizeof vers[i], "%ld", ms[i]->version);
        ms_[i].version = vers ? vers[i] : V2_VERSION;
        ms_[i].inference_count = t.images;
        ms_[i].execution_count = t.count[METRICS_H_INFERENCE];
        ms_[i].inference_stats = &is[i];
        pms[i] = &ms_[i];
    }
    Inference__ModelStatisticsResponse r = INFERENCE__MODEL_STATISTICS_RESPONSE__INIT;
    r.n_model_stats = (size_t)n;
    r.model_stats = pms;
    answer_msg(s, &r.base);
    free(ms_), free(pms), free(is), free(d), free(vers);
    for (int i = 0; i < n; i++)
        registry_release(ms[i]);
}

/* RepositoryIndex: the registry's index (ready: READY versions only). */
static void repository_index(gstream *s, const Inference__RepositoryIndexRequest *q) {
    json_t *idx = registry_index(grpc_app(s), NULL, q->ready);
    size_t n = json_array_size(idx);
    Inference__RepositoryIndexResponse__ModelIndex *mi = calloc(n + 1, sizeof(*mi));
    Inference__RepositoryIndexResponse__ModelIndex **pmi = calloc(n + 1, sizeof(*pmi));
    if (!idx || !mi || !pmi) {
        free(mi), free(pmi), json_decref(idx);
        grpc_answer(s, GRPC_INTERNAL, "out of memory", NULL, 0);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(idx, i);
        inference__repository_index_response__model_index__init(&mi[i]);
        mi[i].name = (char *)json_string_value(json_object_get(e, "name"));
        mi[i].version = (char *)json_string_value(json_object_get(e, "version"));
        mi[i].state = (char *)json_string_value(json_object_get(e, "state"));
        mi[i].reason = (char *)json_string_value(json_object_get(e, "reason"));
        pmi[i] = &mi[i];
    }
    Inference__RepositoryIndexResponse r = INFERENCE__REPOSITORY_INDEX_RESPONSE__INIT;
    r.n_models = n;
    r.models = pmi;
    answer_msg(s, &r.base);
    free(mi), free(pmi), json_decref(idx);
}

/* RepositoryModelLoad / Unload (explicit mode) run on the registry's loader
 * thread, which can take seconds: the event loop goes on serving the port,
 * and the answer comes back as a call (grpc_server_wake), as a ModelInfer's. */
static void control_done(void *ctx, int status, const char *msg) {
    grpc_call *c = ctx;
    c->ctl_status = status;
    snprintf(c->ctl_msg, sizeof c->ctl_msg, "%s", msg);
    grpc_server_wake(&c->b);
}

/* A call of stream s (its request base as the transport answers it), or NULL. */
static grpc_call *call_new(gstream *s, int64_t t0) {
    grpc_call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    req_base *b = &c->b;
    b->a = grpc_app(s);
    b->model = -1;
    b->t0_ns = t0;
    b->wake = grpc_server_wake;
    b->protocol = METRICS_PROTO_GRPC;
    b->counted = 1; /* the transport counts the answer */
    snprintf(b->id, sizeof b->id, "%s", s->rid);
    c->srv = grpc_srv(s);
    return c;
}

static void repository_control(gstream *s, const char *name, int load) {
    grpc_call *c = call_new(s, s->t0_ns);
    if (!c) {
        grpc_answer(s, GRPC_INTERNAL, "out of memory", NULL, 0);
        return;
    }
    c->b.err_image = -1;
    c->control = load ? 1 : 2;
    c->s = s;
    s->call = c;
    grpc_server_call_add(c->srv);
    char msg[400];
    int st =
        registry_control_async(c->b.a, name, strlen(name), load, control_done, c, msg, sizeof msg);
    if (st) /* refused at once: answered the same way, from the loop's next turn */
        control_done(c, st, msg);
}

static void control_finish(grpc_call *c, gstream *s) {
    int st = c->ctl_status;
    if (st == 200 && c->control == 1) {
        Inference__RepositoryModelLoadResponse r = INFERENCE__REPOSITORY_MODEL_LOAD_RESPONSE__INIT;
        answer_msg(s, &r.base);
    } else if (st == 200) {
        Inference__RepositoryModelUnloadResponse r =
            INFERENCE__REPOSITORY_MODEL_UNLOAD_RESPONSE__INIT;
        answer_msg(s, &r.base);
    } else {
        grpc_answer(s,
                    st == 404   ? GRPC_NOT_FOUND
                    : st == 503 ? GRPC_UNAVAILABLE
                                : GRPC_INVALID_ARGUMENT,
                    c->ctl_msg, NULL, 0);
    }
}

void grpc_dispatch(gstream *s) {
    app *a = grpc_app(s);
    unpack_limit l;
    ProtobufCAllocator al;
    ProtobufCMessage *m = NULL;
    switch (s->method) {
    case GM_SERVER_LIVE:
        if ((m = unpack_small(s, &inference__server_live_request__descriptor, &l, &al))) {
            Inference__ServerLiveResponse r = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
            r.live = 1;
            answer_msg(s, &r.base);
        }
        break;
    case GM_SERVER_READY:
        if ((m = unpack_small(s, &inference__server_ready_request__descriptor, &l, &al))) {
            Inference__ServerReadyResponse r = INFERENCE__SERVER_READY_RESPONSE__INIT;
            r.ready = server_ready(a);
            answer_msg(s, &r.base);
        }
        break;
    case GM_SERVER_METADATA:
        if ((m = unpack_small(s, &inference__server_metadata_request__descriptor, &l, &al))) {
            static char *ext[] = {"classification", "model_repository"};
            Inference__ServerMetadataResponse r = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
            r.name = "resnetd";
            r.version = RESNETD_VERSION;
            r.n_extensions = 2;
            r.extensions = ext;
            answer_msg(s, &r.base);
        }
        break;
    case GM_MODEL_READY:
        if ((m = unpack_small(s, &inference__model_ready_request__descriptor, &l, &al))) {
            Inference__ModelReadyRequest *q = (Inference__ModelReadyRequest *)m;
            app_model *mv = find_model(s, q->name, q->version);
            if (mv) {
                Inference__ModelReadyResponse r = INFERENCE__MODEL_READY_RESPONSE__INIT;
                r.ready = model_ready(a);
                answer_msg(s, &r.base);
                registry_release(mv);
            }
        }
        break;
    case GM_MODEL_METADATA:
        if ((m = unpack_small(s, &inference__model_metadata_request__descriptor, &l, &al))) {
            Inference__ModelMetadataRequest *q = (Inference__ModelMetadataRequest *)m;
            app_model *mv = find_model(s, q->name, q->version);
            if (mv)
                model_metadata(s, mv);
            registry_release(mv);
        }
        break;
    case GM_MODEL_INFER:
        s->dmsg = s->msg;
        s->dlen = s->len;
        s->dreserved = s->msg_reserved;
        s->msg = NULL;
        s->msg_reserved = 0;
        model_infer(s);
        break;
    case GM_MODEL_STATISTICS:
        if ((m = unpack_small(s, &inference__model_statistics_request__descriptor, &l, &al)))
            model_statistics(s, (Inference__ModelStatisticsRequest *)m);
        break;
    case GM_REPOSITORY_INDEX:
        if ((m = unpack_small(s, &inference__repository_index_request__descriptor, &l, &al)))
            repository_index(s, (Inference__RepositoryIndexRequest *)m);
        break;
    case GM_REPOSITORY_LOAD:
        if ((m = unpack_small(s, &inference__repository_model_load_request__descriptor, &l, &al)))
            repository_control(s, ((Inference__RepositoryModelLoadRequest *)m)->model_name, 1);
        break;
    case GM_REPOSITORY_UNLOAD:
        if ((m = unpack_small(s, &inference__repository_model_unload_request__descriptor, &l, &al)))
            repository_control(s, ((Inference__RepositoryModelUnloadRequest *)m)->model_name, 0);
        break;
    case GM_MODEL_STREAM_INFER: /* each message of the stream, one after the other */
        model_infer(s);
        break;
    default: {
        char msg[200];
        snprintf(msg, sizeof msg, "%s is not implemented by resnetd", s->path);
        grpc_answer(s, GRPC_UNIMPLEMENTED, msg, NULL, 0);
    }
    }
    if (m)
        protobuf_c_message_free_unpacked(m, &al);
}

/* ---- ModelInfer ---- */

static void no_finish(req_base *b) {
    (void)b;
}

/* The integer value of an InferParameter: 0 and *v set, or -1. */
static int param_int(const Inference__InferParameter *p, int64_t *v) {
    if (!p)
        return -1;
    switch (p->parameter_choice_case) {
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
        *v = p->int64_param;
        return 0;
    case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM:
        *v = p->uint64_param > INT64_MAX ? INT64_MAX : (int64_t)p->uint64_param;
        return 0;
    default:
        return -1;
    }
}

static int fail(req_base *b, int status, const char *msg) {
    reqbase_fail(b, status, NULL, msg);
    return status;
}

/* The requested outputs: as the REST route (routes_v2_infer.c), each a
 * distinct name of the model's output or of one of its internal tensors
 * (engine.h taps, listed by ModelMetadata's outputs after the model's
 * output; at most one per request, no classification), answered once each in
 * the order asked; none named means the model's output. classification is
 * clamped to the model's classes. */
static int take_outputs(grpc_call *c, const Inference__ModelInferRequest *q, char *msg, size_t ml) {
    const app_model *m = c->b.mv;
    engine_tensor_desc d;
    engine_model_output_desc(m->em, 0, &d);
    snprintf(c->out_name, sizeof c->out_name, "%s", d.name);
    c->tap = -1;
    c->tap_first = 0;
    c->out_wanted = q->n_outputs == 0;
    for (size_t i = 0; i < q->n_outputs; i++) {
        const Inference__ModelInferRequest__InferRequestedOutputTensor *o = q->outputs[i];
        int tap = strcmp(o->name, d.name) ? engine_model_find_tap(m->em, o->name) : -1;
        if (tap < 0 && strcmp(o->name, d.name) != 0) {
            snprintf(msg, ml,
                     "unexpected inference output '%.127s' (entry %zu of outputs) for model '%s' "
                     "(its output is '%s'; ModelMetadata lists its internal tensors after it)",
                     o->name, i, m->mc.name, d.name);
            return 400;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(q->outputs[j]->name, o->name)) {
                snprintf(msg, ml,
                         "output '%.127s' is requested twice (entries %zu and %zu of outputs); "
                         "each output may be named once",
                         o->name, j, i);
                return 400;
            }
        if (tap >= 0 && c->tap >= 0) {
            snprintf(msg, ml,
                     "output '%.127s' (entry %zu of outputs) is a second internal tensor; a "
                     "request may name at most one",
                     o->name, i);
            return 400;
        }
        if (tap >= 0) {
            c->tap = tap;
            c->tap_first = !c->out_wanted;
        } else {
            c->out_wanted = 1;
        }
        for (size_t k = 0; k < o->n_parameters; k++) {
            if (strcmp(o->parameters[k]->key, "classification") != 0)
                continue;
            int64_t v;
            if (param_int(o->parameters[k]->value, &v) || v < 0) {
                snprintf(msg, ml,
                         "output '%.127s': parameter classification must be a non-negative "
                         "integer (int64_param)",
                         o->name);
                return 400;
            }
            if (tap >= 0 && v > 0) {
                snprintf(msg, ml,
                         "output '%.127s' is an internal tensor: classification does not apply",
                         o->name);
                return 400;
            }
            if (tap < 0)
                c->classification = v > m->info.num_classes ? m->info.num_classes : (int)v;
        }
    }
    return 0;
}

/* One jp_v2_input from the message's input (its data pointing into q). */
static int take_input(grpc_call *c, const Inference__ModelInferRequest *q, char *msg, size_t ml) {
    req_base *b = &c->b;
    const app_model *m = b->mv;
    if (q->n_inputs != 1) {
        snprintf(msg, ml, "expected 1 input but got %zu inputs for model '%s'", q->n_inputs,
                 m->mc.name);
        return 400;
    }
    const Inference__ModelInferRequest__InferInputTensor *t = q->inputs[0];
    jp_v2_input in;
    memset(&in, 0, sizeof in);
    snprintf(in.name, sizeof in.name, "%s", t->name);
    snprintf(in.datatype, sizeof in.datatype, "%s", t->datatype);
    if (t->n_shape > JP_MAX_DIMS) {
        snprintf(msg, ml, "input '%s': %zu dimensions, at most %d", in.name, t->n_shape,
                 JP_MAX_DIMS);
        return 400;
    }
    in.ndim = (int)t->n_shape;
    for (size_t i = 0; i < t->n_shape; i++)
        in.shape[i] = t->shape[i];
    in.binary_size = -1;
    if (q->n_raw_input_contents > 1) {
        snprintf(msg, ml, "%zu raw_input_contents for 1 input", q->n_raw_input_contents);
        return 400;
    }
    const Inference__InferTensorContents *ct = t->contents;
    const unsigned char *bin = NULL;
    int fp32 = !strcmp(t->datatype, "FP32"), bytes = !strcmp(t->datatype, "BYTES");
    if (!fp32 && !bytes) {
        snprintf(msg, ml,
                 "input '%s' has datatype %s; model '%s' takes FP32 [N,%d,%d,%d] or BYTES "
                 "(encoded images)",
                 in.name, in.datatype, m->mc.name, m->info.channels, m->info.height, m->info.width);
        return 400;
    }
    size_t typed = ct ? ct->n_bool_contents + ct->n_int_contents + ct->n_int64_contents +
                            ct->n_uint_contents + ct->n_uint64_contents + ct->n_fp64_contents +
                            (fp32 ? ct->n_bytes_contents : ct->n_fp32_contents)
                      : 0;
    if (typed) {
        snprintf(msg, ml, "input '%s' (%s) carries contents of another datatype", in.name,
                 in.datatype);
        return 400;
    }
    size_t n_own = ct ? (fp32 ? ct->n_fp32_contents : ct->n_bytes_contents) : 0;
    if (q->n_raw_input_contents == 1) {
        if (n_own) {
            snprintf(msg, ml, "input '%s' has both contents and raw_input_contents", in.name);
            return 400;
        }
        bin = q->raw_input_contents[0].data;
        in.binary_size = (int64_t)q->raw_input_contents[0].len;
        if (!bin)
            bin = (const unsigned char *)"";
    } else if (!n_own) {
        snprintf(msg, ml, "input '%s' has neither contents nor raw_input_contents", in.name);
        return 400;
    } else if (fp32) {
        in.has_data = 1;
        in.count = ct->n_fp32_contents;
        in.f32 = ct->fp32_contents;
    } else {
        in.has_data = 1;
        in.count = ct->n_bytes_contents;
        /* pointers into the message: freed with it, after the decode */
        in.bytes = malloc(in.count * sizeof(char *));
        in.bytes_len = malloc(in.count * sizeof(size_t));
        if (!in.bytes || !in.bytes_len) {
            free(in.bytes);
            free(in.bytes_len);
            snprintf(msg, ml, "out of memory");
            return 500;
        }
        for (size_t i = 0; i < in.count; i++) {
            in.bytes[i] = (char *)ct->bytes_contents[i].data;
            in.bytes_len[i] = ct->bytes_contents[i].len;
        }
    }
    int st;
    if (fp32) {
        st = v2_take_fp32(b, &in, bin, msg, ml);
    } else {
        unsigned char **none = NULL;
        int nnone = 0;
        st = v2_take_bytes(b, &in, bin, V2_BYTES_RAW, &none, &nnone, msg, ml);
    }
    free(in.bytes);
    free(in.bytes_len);
    return st;
}

/* On a decode thread: unpack, find the model, check outputs and input. */
static int infer_prepare(req_base *b) {
    grpc_call *c = (grpc_call *)b;
    app *a = b->a;
    char msg[600];
    uint64_t cap = (uint64_t)c->msg_len + GRPC_UNPACK_SLACK;
    if (budget_reserve(&a->mem, cap)) {
        metrics_rejected(a->metrics, METRICS_REJECT_OVER_BUDGET);
        reqbase_fail(b, 503, "over_budget",
                     "unpacking the message does not fit the server's max_inflight_bytes now; "
                     "retry later");
        return 503;
    }
    c->unpack_reserved = cap;
    unpack_limit *l = calloc(1, sizeof(*l));
    ProtobufCAllocator *al = calloc(1, sizeof(*al));
    if (!l || !al) {
        free(l);
        free(al);
        return fail(b, 500, "out of memory");
    }
    l->cap = cap;
    al->alloc = lim_alloc;
    al->free = lim_free;
    al->allocator_data = l;
    Inference__ModelInferRequest *q =
        inference__model_infer_request__unpack(al, c->msg_len, c->msg);
    c->req = q;
    c->req_alloc = al;
    /* the serialized bytes are no longer needed */
    free(c->msg);
    c->msg = NULL;
    budget_release(&a->mem, c->msg_reserved);
    c->msg_reserved = 0;
    if (!q) {
        snprintf(msg, sizeof msg,
                 "the request message does not parse as inference.ModelInferRequest%s",
                 l->used + 64 > l->cap ? " (or decodes to more than its size + 256 KiB)" : "");
        return fail(b, 400, msg);
    }
    long ver = parse_version(q->model_version);
    if (!b->mv || strcmp(b->mv->mc.name, q->model_name) || (ver >= 0 && b->mv->version != ver)) {
        /* announced to another model (model_name twice: the last wins) or none */
        reqbase_expect(b, 0);
        if (ver < -1 || reqbase_bind(b, q->model_name, strlen(q->model_name), ver) < 0) {
            if (q->model_version[0])
                snprintf(msg, sizeof msg, "model '%.200s' has no version '%.40s'", q->model_name,
                         q->model_version);
            else
                snprintf(msg, sizeof msg, "unknown model '%.200s'", q->model_name);
            return fail(b, 404, msg);
        }
    }
    if (strlen(q->id) > 255)
        return fail(b, 400, "id is longer than 255 bytes");
    if (utf8_invalid_at(q->id, strlen(q->id)) >= 0) /* it is echoed in a proto3 string */
        return fail(b, 400, "id is not valid UTF-8");
    for (size_t k = 0; k < q->n_parameters; k++) {
        int64_t v;
        if (strcmp(q->parameters[k]->key, "timeout") != 0)
            continue;
        if (param_int(q->parameters[k]->value, &v) || v < 0)
            return fail(b, 400, "parameter timeout must be a non-negative integer (microseconds)");
        if (v > 0 && v < INT64_MAX / 1000 && b->t0_ns + v * 1000 < b->deadline_ns)
            b->deadline_ns = b->t0_ns + v * 1000;
    }
    int st = take_outputs(c, q, msg, sizeof msg);
    if (!st)
        st = take_input(c, q, msg, sizeof msg);
    if (!st && c->tap >= 0) /* raw_output_contents: binary data's bound */
        st = v2_take_tap(b, c->tap, 1, msg, sizeof msg);
    if (st)
        return fail(b, st, msg);
    return 0;
}

/* A ModelInfer's error: the RPC's status (unary), or one
 * ModelStreamInferResponse with error_message on a ModelStreamInfer stream,
 * which goes on. */
static void infer_error(gstream *s, int status, const char *msg, int64_t t0, int model) {
    if (!s->streaming) {
        grpc_answer(s, status, msg, NULL, 0);
        return;
    }
    Inference__ModelStreamInferResponse r = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    r.error_message = (char *)msg;
    size_t len = protobuf_c_message_get_packed_size(&r.base);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf)
        protobuf_c_message_pack(&r.base, buf);
    grpc_stream_push(s, buf, len, grpc_status_http(status), model, 0, t0);
}

/* A ModelInfer's answer: the RPC's (unary) or one ModelStreamInferResponse. */
static void infer_answer(gstream *s, Inference__ModelInferResponse *r, int model, int images,
                         int64_t t0) {
    if (!s->streaming) {
        answer_msg(s, &r->base);
        return;
    }
    Inference__ModelStreamInferResponse sr = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    sr.error_message = "";
    sr.infer_response = r;
    size_t len = protobuf_c_message_get_packed_size(&sr.base);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf)
        protobuf_c_message_pack(&sr.base, buf);
    grpc_stream_push(s, buf, len, 200, model, images, t0);
}

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    *v = 0;
    for (int sh = 0; *p < end && sh < 64; sh += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7F) << sh;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

/* The model a serialized ModelInferRequest names (field 1), found by one
 * pass over its top-level fields without unpacking; -1 when absent or
 * unknown (the unpack on the decode pool says why). */
static int peek_model(req_base *b, const uint8_t *m, size_t len) {
    const uint8_t *p = m, *end = m + len;
    while (p < end) {
        uint64_t key, n;
        if (varint(&p, end, &key))
            return -1;
        switch (key & 7) {
        case 0:
            if (varint(&p, end, &n))
                return -1;
            break;
        case 1:
            p += 8;
            break;
        case 5:
            p += 4;
            break;
        case 2:
            if (varint(&p, end, &n) || n > (uint64_t)(end - p))
                return -1;
            if (key >> 3 == 1)
                return reqbase_bind(b, (const char *)p, (size_t)n, -1);
            p += n;
            break;
        default:
            return -1;
        }
    }
    return -1;
}

static void model_infer(gstream *s) {
    app *a = grpc_app(s);
    int64_t t0 = s->streaming ? queue_now_ns() : s->t0_ns; /* a stream's messages: each its own */
    grpc_call *c = call_new(s, t0);
    if (!c) {
        infer_error(s, GRPC_INTERNAL, "out of memory", t0, -1);
        return;
    }
    req_base *b = &c->b;
    const char *code, *why;
    int st = 0;
    if (s->admitted && atomic_load(&a->draining)) {
        /* its HEADERS came before the drain: already accepted, the drain
         * waits for its count (grpc_server.c check_headers), now the call's */
        s->admitted = 0;
        b->work = 1;
    } else {
        st = reqbase_gate(b, &code, &why);
    }
    if (st) {
        infer_error(s, grpc_status_from_http(st), why, t0, -1);
        reqbase_done(b, st);
        free(c);
        return;
    }
    /* announce it to its model's queue, as HTTP does from its headers: a
     * forming batch waits for it (queue_expect) while it is decoded */
    (void)peek_model(b, s->dmsg, s->dlen); /* sets b->model (the version's metrics slot) */
    if (!s->streaming)                     /* a stream reset before the answer is counted for it */
        s->model = b->model;
    reqbase_expect(b, 1);
    /* request_timeout_ms from the message's start; grpc-timeout from the
     * stream's (the same for ModelInfer) */
    b->deadline_ns = b->t0_ns + (int64_t)a->cfg->request_timeout_ms * 1000000;
    if (s->timeout_ns >= 0 && s->t0_ns + s->timeout_ns < b->deadline_ns)
        b->deadline_ns = s->t0_ns + s->timeout_ns;
    c->msg = s->dmsg;
    c->msg_len = s->dlen;
    c->msg_reserved = s->dreserved;
    s->dmsg = NULL;
    s->dreserved = 0;
    c->s = s;
    s->call = c;
    grpc_server_call_add(c->srv);
    reqbase_submit_async(b, infer_prepare, no_finish);
}

/* The raw output bytes as the REST route's binary outputs: FP32 floats
 * little-endian, or BYTES strings each after its 4-byte length. */
static uint8_t *raw_output(const app_model *m, const float *out, int n, int k, size_t *len) {
    if (k == 0) {
        *len = (size_t)n * (size_t)m->info.num_classes * sizeof(float);
        uint8_t *p = malloc(*len ? *len : 1);
        if (p)
            memcpy(p, out, *len);
        return p;
    }
    char **strs = v2_classify_strings(m, out, n, k);
    if (!strs)
        return NULL;
    size_t count = (size_t)n * (size_t)k, total = 0;
    for (size_t i = 0; i < count; i++)
        total += 4 + strlen(strs[i]);
    uint8_t *p = malloc(total ? total : 1);
    size_t off = 0;
    for (size_t i = 0; p && i < count; i++) {
        uint32_t l = (uint32_t)strlen(strs[i]);
        uint8_t le[4] = {(uint8_t)l, (uint8_t)(l >> 8), (uint8_t)(l >> 16), (uint8_t)(l >> 24)};
        memcpy(p + off, le, 4);
        memcpy(p + off + 4, strs[i], l);
        off += 4 + l;
    }
    v2_free_strs(strs, count);
    *len = total;
    return p;
}

void grpc_call_finish(grpc_call *c, gstream *s) {
    if (c->control) {
        control_finish(c, s);
        return;
    }
    req_base *b = &c->b;
    const char *code, *why;
    int st = reqbase_result(b, &code, &why);
    if (!s->streaming)
        s->model = b->model;
    if (st != 200) {
        char msg[700];
        const Inference__ModelInferRequest *q = c->req;
        if (b->err_image >= 0 && q && q->n_inputs == 1)
            snprintf(msg, sizeof msg, "input '%.127s' element %d: %s", q->inputs[0]->name,
                     b->err_image, why);
        else
            snprintf(msg, sizeof msg, "%s", why ? why : "internal error");
        infer_error(s, grpc_status_from_http(st), msg, b->t0_ns, b->model);
        return;
    }
    const Inference__ModelInferRequest *q = c->req;
    const app_model *m = b->mv;
    int n = b->nimgs, k = c->classification;
    size_t rlen = 0;
    uint8_t *raw = NULL;
    if (c->out_wanted && !k) /* the floats as they are: no copy before the pack */
        rlen = (size_t)n * (size_t)m->info.num_classes * sizeof(float);
    else if (c->out_wanted && !(raw = raw_output(m, b->out, n, k, &rlen))) {
        infer_error(s, GRPC_INTERNAL, "out of memory", b->t0_ns, b->model);
        return;
    }
    /* up to two outputs: the model's and an internal tensor's (as the REST
     * route's binary data: the floats little-endian, [n, dims...]) */
    Inference__ModelInferResponse__InferOutputTensor ot[2] = {
        INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT,
        INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT};
    Inference__ModelInferResponse__InferOutputTensor *os[2];
    ProtobufCBinaryData rd[2];
    int64_t shape[2] = {n, k ? k : m->info.num_classes}, tshape[ENGINE_MAX_DIMS];
    engine_tensor_desc td;
    size_t no = 0;
    for (int pass = 0; pass < 2; pass++) {
        int tap_now = pass == (c->tap_first ? 0 : 1);
        Inference__ModelInferResponse__InferOutputTensor *o = &ot[no];
        if (tap_now && c->tap >= 0) {
            engine_model_tap_desc(m->em, c->tap, &td);
            tshape[0] = n;
            for (int i = 1; i < td.ndim; i++)
                tshape[i] = td.dims[i];
            o->name = (char *)td.name;
            o->datatype = "FP32";
            o->n_shape = (size_t)td.ndim;
            o->shape = tshape;
            rd[no] = (ProtobufCBinaryData){(size_t)n * b->tap_floats * sizeof(float),
                                           (uint8_t *)b->tap_out};
        } else if (!tap_now && c->out_wanted) {
            o->name = c->out_name;
            o->datatype = k ? "BYTES" : "FP32";
            o->n_shape = 2;
            o->shape = shape;
            rd[no] = (ProtobufCBinaryData){rlen, k ? raw : (uint8_t *)b->out};
        } else {
            continue;
        }
        os[no++] = o;
    }
    Inference__ModelInferResponse r = INFERENCE__MODEL_INFER_RESPONSE__INIT;
    char ver[32];
    snprintf(ver, sizeof ver, "%ld", m->version);
    r.model_name = (char *)m->mc.name;
    r.model_version = ver;
    r.id = q->id;
    r.n_outputs = no;
    r.outputs = os;
    r.n_raw_output_contents = no;
    r.raw_output_contents = rd;
    if (!s->streaming)
        s->images = b->images_ok;
    infer_answer(s, &r, b->model, b->images_ok, b->t0_ns);
    free(raw);
}

void grpc_call_free_service(grpc_call *c) {
    if (c->req)
        protobuf_c_message_free_unpacked(&c->req->base, c->req_alloc);
    if (c->req_alloc) {
        free(c->req_alloc->allocator_data);
        free(c->req_alloc);
    }
    c->req = NULL;
    c->req_alloc = NULL;
}
