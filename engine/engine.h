/*
 * engine.h — resnetd's inference engine: an ONNX file becomes a oneDNN plan.
 *
 * Two objects:
 *   engine_model  loaded once, immutable afterwards, shared by any number of
 *                 threads (weights already reordered for the CPU's kernels).
 *   engine_ctx    one per worker thread: its oneDNN stream, primitives per
 *                 batch size, activation arena, scratchpad and thread count.
 *                 A context is never used by two threads at once.
 *
 * Errors are values: every fallible call returns an engine_status and, when
 * err is not NULL, writes one line naming the cause (file, node, op,
 * attribute...) into the caller's err buffer (always NUL-terminated).
 * No oneDNN or protobuf type appears in this header.
 */
#ifndef RESNETD_ENGINE_H
#define RESNETD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    ENGINE_OK = 0,
    ENGINE_ERR_IO,          /* file missing or unreadable */
    ENGINE_ERR_PARSE,       /* not a valid ONNX protobuf */
    ENGINE_ERR_UNSUPPORTED, /* op, attribute, data type or opset we do not run */
    ENGINE_ERR_INVALID,     /* malformed graph: missing/wrong initializer, bad dims, cycle */
    ENGINE_ERR_NOMEM,       /* allocation failed */
    ENGINE_ERR_BACKEND,     /* oneDNN refused a primitive or failed at run time */
    ENGINE_ERR_ARG,         /* bad argument from the caller (batch size, shape) */
} engine_status;

/* Stable snake_case name of a status ("unsupported", ...); never NULL. */
const char *engine_status_str(engine_status s);

/* oneDNN's name for the instruction set its kernels use on this CPU (e.g.
 * "Intel AVX2"), after ONEDNN_MAX_CPU_ISA; static storage, never NULL. */
const char *engine_cpu_isa(void);

/* The int8 scales file `resnetd quantize` writes into a model directory and
 * an int8 model directory holds (engine_load_params.quant_path). */
#define ENGINE_QUANT_FILE "quant.tsv"

typedef struct engine_model engine_model;
typedef struct engine_ctx engine_ctx;

/* The fp32 convolution algorithms (engine_load_params.conv_choices). AUTO:
 * the static rules (Winograd for 3x3 stride-1 convs on maps of 14x14 and
 * larger, channels-last for direct KxK convs doing many MACs per element
 * moved, else direct on the blocked layout). */
typedef enum {
    ENGINE_CONV_AUTO = 0,
    ENGINE_CONV_DIRECT,        /* oneDNN's direct kernel on the blocked layout */
    ENGINE_CONV_CHANNELS_LAST, /* brgemm kernel on nhwc copies, a reorder on each side (AVX-512) */
    ENGINE_CONV_WINOGRAD,      /* 3x3, stride 1, no groups or dilation (AVX-512) */
} engine_conv_algo;
#define ENGINE_CONV_NALGO 4

/* "auto", "direct", "channels_last", "winograd"; "?" for anything else. */
const char *engine_conv_algo_str(int algo);
/* The algorithm named s (one of the names above), or -1. */
int engine_conv_algo_parse(const char *s);

/* One Conv's algorithm, keyed by its ONNX node name. */
typedef struct {
    char node[128];
    int algo; /* engine_conv_algo */
} engine_conv_choice;

typedef struct {
    int max_batch;          /* largest batch a context will run; ignored for a fixed-batch model */
    int winograd;           /* 1: Winograd kernels for 3x3 stride-1 convs where oneDNN has them
                               (AVX-512); 0: direct convolution only */
    int channels_last;      /* 1: direct KxK convs (K > 1) on channels-last tensors where
                               oneDNN has its brgemm kernel for them (AVX-512), with a reorder
                               on each side; 0: on the blocked layout like the rest */
    const char *quant_path; /* NULL: fp32. Else the activation ranges written by
                               `resnetd quantize` (ENGINE_QUANT_FILE): convolutions whose
                               input and output have a range run in int8 (u8
                               activations, s8 per-channel weights). Read during
                               the load only. */
    /* Per-node overrides of the static rules for fp32 Convs (`resnetd bench
     * --tune`, engine_tune_convs): each named node uses its algorithm where
     * that is available for it (geometry, CPU, and the winograd /
     * channels_last flags above still allowing it), else the static rule.
     * Names the graph does not have are ignored. Read during the load only. */
    const engine_conv_choice *conv_choices;
    int nconv_choices;
    int conv_force; /* engine_conv_algo: every Conv uses this one where available
                       (AUTO: none; conv_choices then apply). For tests and tuning. */
} engine_load_params;

/* max_batch = 8, winograd = 1, channels_last = 1, quant_path = NULL */
engine_load_params engine_load_default_params(void);

/* Loads an ONNX file (external data is resolved relative to its directory).
 * On success *out is a new model the caller frees with engine_model_free(). */
engine_status engine_model_load(const char *path, const engine_load_params *p, engine_model **out,
                                char *err, size_t err_len);

/* Same from bytes in memory (the fuzzer's entry point). base_dir resolves
 * external data files; NULL forbids external data. data is not retained. */
engine_status engine_model_load_memory(const void *data, size_t len, const char *base_dir,
                                       const engine_load_params *p, engine_model **out, char *err,
                                       size_t err_len);

/* Frees a model; NULL is a no-op. Every context of it must be freed first. */
void engine_model_free(engine_model *m);

typedef struct {
    int channels, height, width; /* per-image input shape (the model's first input) */
    int num_classes;             /* output floats per image */
    int fixed_batch;             /* 0 when the batch dimension is dynamic */
    int max_batch;               /* largest n engine_run accepts */
} engine_model_info;

void engine_model_get_info(const engine_model *m, engine_model_info *info);

/* Threads: Debian's oneDNN runs on OpenMP; the count is applied (as the
 * calling thread's OpenMP ICV) before every build and run of the context.
 * OpenMP waits by spinning: on a machine shared with other busy processes,
 * starting resnetd with OMP_WAIT_POLICY=PASSIVE (read by libgomp at start-up,
 * so it must be in the environment) is several times faster at 2+ threads. */
typedef struct {
    int threads; /* oneDNN threads for this context; 0 = every core */
} engine_ctx_params;

engine_ctx_params engine_ctx_default_params(void);

/* Creates a context for m. The model must outlive the context. */
engine_status engine_ctx_create(const engine_model *m, const engine_ctx_params *p, engine_ctx **out,
                                char *err, size_t err_len);

/* Frees a context; NULL is a no-op. */
void engine_ctx_free(engine_ctx *c);

/* Builds the context's plans for every batch size it accepts (1..max_batch,
 * or the fixed batch) now, so no later engine_run allocates or compiles.
 * Activation memory is shared by all batch sizes (sized for the largest).
 * Call from the thread that will run the context. */
engine_status engine_ctx_warm(engine_ctx *c, char *err, size_t err_len);

/* Runs n images (1 <= n <= max_batch, or n == fixed_batch).
 * input:  n * channels * height * width floats, NCHW, plain layout.
 * output: n * num_classes floats, written by the call.
 * Allocates nothing once the context has run batch size n before. */
engine_status engine_run(engine_ctx *c, const float *input, int n, float *output, char *err,
                         size_t err_len);

/* Measured per-node algorithm choice (engine_tune.c): the model at path is
 * loaded once per algorithm with every Conv forced to it (conv_force) where
 * available, plus once with the static rules; each variant runs `runs` times
 * (after a warm-up, interleaved) at batch `batch` on `threads` threads on the
 * calling thread, waiting after every step, and each node's time is the sum
 * of its steps (its reorders included). Per Conv node and algorithm the
 * median is kept. *out (free()) lists the Conv nodes where more than one
 * algorithm was available, each with the fastest (the static rules' choice
 * unless another's median is at least 3 % lower); p: the load parameters
 * (its conv_choices and conv_force are not used). */
typedef struct {
    char node[128];
    int algo;                     /* the fastest */
    int default_algo;             /* the static rules' choice */
    double ms[ENGINE_CONV_NALGO]; /* median per algorithm (index: engine_conv_algo); < 0: n/a */
} engine_conv_timing;

engine_status engine_tune_convs(const char *path, const engine_load_params *p, int batch,
                                int threads, int runs, engine_conv_timing **out, int *nout,
                                char *err, size_t err_len);

/*
 * Generic tensors, for graphs that are not image classifiers (ONNX's own
 * operator tests, multi-input graphs). Shapes are the full ONNX shapes,
 * batch included; data is float32, plain row-major (C order).
 */
#define ENGINE_MAX_DIMS 8

typedef struct {
    char name[128];
    int ndim;
    int64_t dims[ENGINE_MAX_DIMS]; /* dims[0] is -1 when the batch is dynamic */
} engine_tensor_desc;

int engine_model_num_inputs(const engine_model *m); /* graph inputs that are not initializers */
int engine_model_num_outputs(const engine_model *m);
void engine_model_input_desc(const engine_model *m, int i, engine_tensor_desc *d);
void engine_model_output_desc(const engine_model *m, int i, engine_tensor_desc *d);

/* Runs the graph on full tensors: inputs[i] has the shape of input i with the
 * batch dimension set to n (for a fixed-batch model n must equal it);
 * outputs[i] receives output i with the same batch n. */
engine_status engine_run_tensors(engine_ctx *c, int n, const float *const *inputs,
                                 float *const *outputs, char *err, size_t err_len);

/*
 * Internal tensors ("taps"): the named float tensors of the ONNX graph that
 * have the batch as their first dimension and that a caller may ask for
 * besides the output (embeddings, feature maps). A tap has its ONNX meaning
 * even where the plan fuses it away (a conv whose ReLU is fused: the conv's
 * own output). Runs that ask for no tap run exactly the plan engine_run runs.
 * Listed: every tensor the optimised graph computes (each node output that
 * survives BatchNorm folding and ReLU/Clip/residual-Add fusion, named as in
 * the ONNX file: a fused conv+BN+ReLU is listed under the ReLU's output
 * name, with that value), then, for fp32 models, the tensors those fusions
 * hid (the conv+BN's output before its ReLU, the residual Add before its
 * ReLU, the conv branch before the Add; engine_model_tap_unfused). A conv's
 * output before a BatchNorm folded into its weights no longer exists and is
 * not listed. Asking for a tap adds one copy (a oneDNN reorder of that image,
 * dequantizing a u8/s8 tensor of an int8 plan) right after the step that
 * completes it, on the model's own plan or, for a hidden tensor, on a plan
 * variant that runs just the nodes asked for unfused.
 */
int engine_model_num_taps(const engine_model *m);
/* Name and full shape (dims[0] is -1 when the batch is dynamic). */
void engine_model_tap_desc(const engine_model *m, int i, engine_tensor_desc *d);
/* 1 when tap i is a tensor the optimised plan fuses away (a conv's output
 * before its fused ReLU or residual sum): a run asking for it runs a plan
 * variant with that node unfused (built on first use, cached per context,
 * at most 4; its outputs equal the fused plan's within float rounding). */
int engine_model_tap_unfused(const engine_model *m, int i);
/* The tap called name, or -1. */
int engine_model_find_tap(const engine_model *m, const char *name);
/* The default embedding: the tap that feeds the final classifier (a ResNet's
 * global-average-pool output), or -1 when the graph has none. */
int engine_model_default_embedding(const engine_model *m);

/* Class activation maps (Zhou et al. 2016) need a graph that ends
 * conv features [N,C,h,w] -> global average pool -> (Flatten/Reshape) ->
 * one Gemm/MatMul(+Add) -> (Softmax). */
typedef struct {
    int features_tap; /* the [N,C,h,w] tap that feeds the pooling */
    int channels, height, width, classes;
    const float
        *weight; /* classes x channels, row-major: the classifier's rows (owned by the model) */
    const float *bias; /* classes floats, or NULL */
} engine_cam_info;

/* ENGINE_OK with *ci filled, or ENGINE_ERR_UNSUPPORTED with err naming which
 * part of that structure the graph lacks. */
engine_status engine_model_cam_info(const engine_model *m, engine_cam_info *ci, char *err,
                                    size_t err_len);

typedef struct {
    int image;  /* 0..n-1 */
    int tap;    /* engine_model_find_tap() */
    float *dst; /* receives that image's tap: the product of dims[1..] floats */
} engine_fetch;

/* engine_run that also copies the tapped tensors out: each fetch names an
 * image of the batch and a tap (images may ask for different taps, or none).
 * nfetch == 0 is exactly engine_run. The context keeps the copy primitive of
 * each (batch size, tap) it was asked for, at most 32 (least recently used
 * out), so one run may ask for at most 32 different taps (ENGINE_ERR_ARG). */
engine_status engine_run_fetch(engine_ctx *c, const float *input, int n, float *output,
                               const engine_fetch *fetch, int nfetch, char *err, size_t err_len);

#endif
