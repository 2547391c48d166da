/*
 * dnnl_build.h — what the op builders of engine/dnnl/ share (internal to the
 * folder). The folder is layered, each file calling only files below it:
 *   dnnl_build.c   the plan_builder helpers (pb_*) and memory descs (md_*)
 *   dnnl_<family>.c   one builder per family of ops (conv, conv_int8, ops,
 *                  pool, matmul, layout), named by the operator table
 *   plan_exec.c    memory planning (plan_finalize), bind, run, free
 *   plan.c         plan_build: per node, the builder of its row
 *   dnnl_model.c   load time: the weights prepared for the kernels
 * (tools/call_layers.py checks it.)
 */
#ifndef RESNETD_DNNL_BUILD_H
#define RESNETD_DNNL_BUILD_H

#include "plan.h"

/* plan_arg.tensor of the scratchpad argument */
#define ARG_SCRATCH (-2)

typedef struct {
    const dnnl_model *m;
    plan *p;
    int node; /* node being built, for messages */
    char *err;
    size_t err_len;
} plan_builder;

/* ---- helpers shared by the op builders (dnnl_build.c) ---- */
void md_plain(dnnl_memory_desc_t *md, const int64_t *dims, int ndim);
int md_is_plain(const dnnl_memory_desc_t *md); /* physically row-major dense */
/* *out = md with n images (dims[0] = n), the other dims and the layout kept;
 * 0 when md's images are not contiguous blocks one after another (a blocked
 * layout with dim 0 outermost, unblocked, at offset 0), so that image i of a
 * tensor in md starts at i * md_image_bytes(md). */
int md_with_images(const dnnl_memory_desc_t *md, int64_t n, dnnl_memory_desc_t *out);
size_t md_image_bytes(const dnnl_memory_desc_t *md);
engine_status pb_fail(plan_builder *b, engine_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* md of a tensor read by a step (runtime layout, or plain for constants). */
engine_status pb_in_md(plan_builder *b, int t, dnnl_memory_desc_t *md);
/* Returns a tensor holding t in plain layout (t itself or a reordered temp). */
int pb_plain(plan_builder *b, int t);
int pb_temp(plan_builder *b, const int64_t *dims, int ndim);
plan_step *pb_step(plan_builder *b);
void pb_arg(plan_step *s, int arg, int tensor);
void pb_arg_view(plan_step *s, int arg, int tensor, const dnnl_memory_desc_t *md);
engine_status pb_arg_mem(plan_builder *b, plan_step *s, int arg, const dnnl_memory_desc_t *md,
                         void *data);
/* Creates pd from an op desc (scratchpad in user mode), then the primitive of
 * step s, and sets md[out] to the pd's dst when out >= 0. */
engine_status pb_prim(plan_builder *b, plan_step *s, const void *op_desc,
                      dnnl_primitive_attr_t attr, int out);
engine_status pb_prim_from_pd(plan_builder *b, plan_step *s, dnnl_primitive_desc_t pd, int out);
engine_status pb_reorder(plan_builder *b, int src, const dnnl_memory_desc_t *src_md, int dst,
                         const dnnl_memory_desc_t *dst_md);
/* Same, multiplying every value by scale (int8 (de)quantization). */
engine_status pb_reorder_scaled(plan_builder *b, int src, const dnnl_memory_desc_t *src_md, int dst,
                                const dnnl_memory_desc_t *dst_md, float scale);
/* Same, quantizing: dst = round(src * scale) + zp (zp: a u8 zero point). */
engine_status pb_reorder_zp(plan_builder *b, int src, const dnnl_memory_desc_t *src_md, int dst,
                            const dnnl_memory_desc_t *dst_md, float scale, int zp);
/* Returns t, or (once per plan) an f32 temp holding u8/s8 tensor t
 * dequantized; -1 on failure (message in b->err). */
int pb_f32(plan_builder *b, int t);
void *pb_own(plan_builder *b, size_t bytes);
dnnl_primitive_attr_t pb_attr(void);

/* The weights of Conv node n as oneDNN sees them: dims with the groups split
 * out ([G, O/G, I, k...] when group > 1). */
void md_conv_weight_dims(const graph_shape *w, int64_t grp, dnnl_dims_t wd, int *wnd);

/* Reorders from (fromdata) into to (todata) now, on strm, waiting for it
 * (load-time weight layouts), on one OpenMP thread; attr: NULL, or e.g.
 * output scales. dnnl_success, or oneDNN's status when it cannot reorder
 * between these layouts (nothing written then). */
dnnl_status_t md_reorder_now(dnnl_engine_t eng, dnnl_stream_t strm, const dnnl_memory_desc_t *from,
                             void *fromdata, const dnnl_memory_desc_t *to, void *todata,
                             const_dnnl_primitive_attr_t attr);

/* ---- op builders: dnnl_build_<build>() of every row of the operator table
 * (graph/graph_ops.h), one file per family ---- */
#define DNNL_BUILD_DECL(NAME, onnx, nmin, nopt, attrs, check, shape, flags, build)                 \
    engine_status dnnl_build_##build(plan_builder *b, const graph_node *n);
GRAPH_OPS(DNNL_BUILD_DECL)
#undef DNNL_BUILD_DECL

/* Fills a convolution desc for n on the given mds (dnnl_conv.c). */
engine_status dnnl_conv_desc(plan_builder *b, const graph_node *n, const graph_shape *x,
                             const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *wmd,
                             const dnnl_memory_desc_t *bmd, const dnnl_memory_desc_t *dst, int wino,
                             dnnl_convolution_desc_t *cd);
/* int8 (dnnl_conv_int8.c): 1 when n can run as a u8/s8 convolution here. */
int dnnl_conv_int8_fits(const plan_builder *b, const graph_node *n);
/* Builds n in int8. ENGINE_ERR_UNSUPPORTED (with nothing added to the plan)
 * when oneDNN has no fast int8 kernel for it: the caller runs it in fp32. */
engine_status dnnl_build_conv_int8(plan_builder *b, const graph_node *n);
/* int8 (dnnl_pool.c): 1 when MaxPool n pools its u8/s8 input as integers
 * (dnnl_build_pool then writes an int8 output on the input's grid). */
int dnnl_pool_int8_fits(const plan_builder *b, const graph_node *n);
/* Clip with runtime bounds (dnnl_layout.c), for dnnl_build_eltwise. */
engine_status dnnl_build_clip_runtime(plan_builder *b, const graph_node *n);
/* Runs a C-implemented step (dnnl_layout.c; called by plan_exec.c); bufs[i]
 * is the data of s->args[i] (0 src, 1 dst). */
void dnnl_run_custom(const plan_step *s, void *const *bufs);

/* Plans memory (liveness) and creates the memory objects (see plan_bind). */
engine_status plan_finalize(plan_builder *b);

#endif
