/*
 * model_config.h — a model as docs/api.md and README.md ("Serving an ImageNet
 * ResNet-50") describe it: a bare .onnx file (ImageNet defaults, labels
 * "0".."N-1") or a directory holding model.onnx, optional labels.txt and
 * optional config.json; and the one place that turns it into the engine's
 * load settings (model_config_engine_params) for serve and every subcommand.
 */
#ifndef RESNETD_MODEL_CONFIG_H
#define RESNETD_MODEL_CONFIG_H

#include "engine.h" /* include paths: resnetd_config links resnetd_engine, resnetd_image */
#include "img.h"

typedef struct {
    char name[128];    /* config.json "name", else the directory / file stem */
    char *onnx_path;   /* malloc'd */
    char *dir;         /* malloc'd; the model directory (or the .onnx's directory) */
    img_params input;  /* from config.json "input" (crop_h = crop_w = crop) */
    int max_batch;     /* config.json "max_batch", default 8 */
    int max_batch_set; /* config.json gave max_batch */
    int int8;          /* config.json "precision": "int8" */
    char *quant_path; /* malloc'd <dir>/quant.tsv for an int8 model (resnetd quantize); else NULL */
    char *tuned_path; /* malloc'd <dir>/tuned.json (TUNED_FILE, resnetd bench --tune) */
    char **labels;    /* num_labels malloc'd strings; NULL when there is no labels.txt */
    int num_labels;
    /* per-node Conv algorithms of the tuned plan in use (serve; malloc'd,
     * model_config_take_conv_choices), passed on by model_config_engine_params */
    engine_conv_choice *conv_choices;
    int nconv_choices;
} model_config;

/* Reads the model at path (directory or .onnx). Returns 0, or -1 with one line
 * naming the file and key at fault in err. Free with model_config_free(). */
int model_config_load(const char *path, model_config *out, char *err, size_t err_len);

/* One version of a versioned model (model_dir/<N>/model.onnx, the server's
 * registry): model.onnx, quant.tsv and tuned.json from version_dir;
 * config.json and labels.txt from version_dir when it has them, else from
 * model_dir; the name from config.json, else model_dir's name. */
int model_config_load_version(const char *model_dir, const char *version_dir, model_config *out,
                              char *err, size_t err_len);

/* The model argument of a subcommand (infer, bench): a directory goes
 * through model_config_load; anything else is taken as the ONNX file itself,
 * checked later by the engine: name = its stem, dir = its directory,
 * tuned_path in that directory, max_batch 0 (the engine's default or the
 * caller's), fp32, no labels. Returns 0, or -1 with err set. Free with
 * model_config_free(). */
int model_config_resolve(const char *path, model_config *out, char *err, size_t err_len);

/* The label of class i: labels[i], or its decimal index when there is no label
 * for it (written into buf, which must hold 16 bytes). */
const char *model_config_label(const model_config *mc, int i, char *buf);

/* The engine load settings of the model: the engine's defaults, max_batch
 * (when > 0, the caller's: a flag, the server option or a tuned plan; else
 * config.json's), for an int8 model, its scales file, and the conv choices
 * taken from a tuned plan (model_config_take_conv_choices). mc may be NULL (a
 * bare ONNX file given to a subcommand): the engine's defaults. The returned
 * quant_path points into mc, which must outlive the engine_model_load call. */
engine_load_params model_config_engine_params(const model_config *mc, int max_batch);

struct tuned_pick_s;
/* Moves the "conv_algorithms" of a tuned.json pick (config/tuned.h) into mc
 * (replacing any), for model_config_engine_params. Returns how many. */
int model_config_take_conv_choices(model_config *mc, struct tuned_pick_s *pick);

/* Frees what model_config_load allocated; NULL is a no-op. */
void model_config_free(model_config *mc);

#endif
