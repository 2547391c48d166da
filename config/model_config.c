/*
 * model_config.c — reads a model (bare .onnx, or a directory with
 * model.onnx, labels.txt, config.json) into a model_config, and turns it
 * into the engine's load settings. The only file that parses config.json;
 * every key is type- and range-checked and a bad one is reported as
 * "<file>: key '<key>': <why>".
 *
 * config.json keys (all optional):
 *   name (string), max_batch (1..1024), precision ("fp32" | "int8"),
 *   description (string, ignored),
 *   input: color ("rgb"|"bgr"|"gray"), resize (1..16384),
 *          crop (1..16384; null = no crop beyond the resize, i.e. crop = resize;
 *          absent = resize when resize is given, else torchvision's 224), scale (> 0), mean, std (1
 * or 3 numbers; 1 is broadcast; a gray model takes the first), exif_orientation (bool), fast_path
 * (bool). Unknown keys are errors: a typo must not silently change preprocessing.
 */
#include "model_config.h"

#include "tuned.h"
#include "utf8.h" /* labels and names go into every JSON answer: checked once here */

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_LABELS 1000000

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static char *path_join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Sets name to the last path component of path without trailing slashes and,
 * when strip is given, without that suffix. */
static void base_name(const char *path, const char *strip, char *name, size_t cap) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/')
        b--;
    size_t len = n - b;
    if (strip && len > strlen(strip) &&
        strncmp(path + n - strlen(strip), strip, strlen(strip)) == 0)
        len -= strlen(strip);
    if (len >= cap) { /* cut, but never inside a UTF-8 character */
        len = cap - 1;
        while (len > 0 && ((unsigned char)path[b + len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(name, path + b, len);
    name[len] = '\0';
}

static int int_key(json_t *v, const char *file, const char *key, int lo, int hi, int *out,
                   char *err, size_t err_len) {
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, err_len, "%s: key '%s': expected an integer in %d..%d", file, key, lo, hi);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int bool_key(json_t *v, const char *file, const char *key, int *out, char *err,
                    size_t err_len) {
    if (!json_is_boolean(v)) {
        snprintf(err, err_len, "%s: key '%s': expected true or false", file, key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* mean/std: 1 or 3 finite numbers (std must be > 0), 1 is broadcast. */
static int triple_key(json_t *v, const char *file, const char *key, int positive, float out[3],
                      char *err, size_t err_len) {
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (n != 1 && n != 3) {
        snprintf(err, err_len, "%s: key '%s': expected an array of 1 or 3 numbers", file, key);
        return -1;
    }
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(v, n == 1 ? 0 : i);
        double d = json_number_value(e);
        if (!json_is_number(e) || !isfinite(d) || (positive && !(d > 0))) {
            snprintf(err, err_len, "%s: key '%s[%zu]': expected a %snumber", file, key,
                     n == 1 ? 0 : i, positive ? "positive " : "");
            return -1;
        }
        out[i] = (float)d;
    }
    return 0;
}

static int parse_input(json_t *in, const char *file, img_params *p, char *err, size_t err_len) {
    if (!json_is_object(in)) {
        snprintf(err, err_len, "%s: key 'input': expected an object", file);
        return -1;
    }
    const char *k;
    json_t *v;
    int have_resize = 0, have_crop = 0, crop_null = 0, crop = 0;
    json_object_foreach(in, k, v) {
        int rc = 0;
        if (strcmp(k, "color") == 0) {
            const char *s = json_string_value(v);
            if (s && strcmp(s, "rgb") == 0)
                p->color = IMG_COLOR_RGB;
            else if (s && strcmp(s, "bgr") == 0)
                p->color = IMG_COLOR_BGR;
            else if (s && strcmp(s, "gray") == 0)
                p->color = IMG_COLOR_GRAY;
            else {
                snprintf(err, err_len,
                         "%s: key 'input.color': expected \"rgb\", \"bgr\" or \"gray\"", file);
                rc = -1;
            }
        } else if (strcmp(k, "resize") == 0) {
            rc = int_key(v, file, "input.resize", 1, 16384, &p->resize, err, err_len);
            have_resize = 1;
        } else if (strcmp(k, "crop") == 0) {
            if (json_is_null(v)) {
                crop_null = 1;
            } else {
                rc = int_key(v, file, "input.crop", 1, 16384, &crop, err, err_len);
                have_crop = 1;
            }
        } else if (strcmp(k, "scale") == 0) {
            double d = json_number_value(v);
            if (!json_is_number(v) || !isfinite(d) || !(d > 0)) {
                snprintf(err, err_len, "%s: key 'input.scale': expected a positive number", file);
                rc = -1;
            }
            p->scale = (float)d;
        } else if (strcmp(k, "mean") == 0) {
            rc = triple_key(v, file, "input.mean", 0, p->mean, err, err_len);
        } else if (strcmp(k, "std") == 0) {
            rc = triple_key(v, file, "input.std", 1, p->std, err, err_len);
        } else if (strcmp(k, "exif_orientation") == 0) {
            rc = bool_key(v, file, "input.exif_orientation", &p->exif_orientation, err, err_len);
        } else if (strcmp(k, "fast_path") == 0) {
            rc = bool_key(v, file, "input.fast_path", &p->fast_path, err, err_len);
        } else {
            snprintf(err, err_len, "%s: key 'input.%s': unknown key", file, k);
            rc = -1;
        }
        if (rc)
            return -1;
    }
    if (have_crop)
        p->crop_h = p->crop_w = crop;
    else if (have_resize || crop_null)
        p->crop_h = p->crop_w = p->resize;
    return 0;
}

static int parse_config(const char *file, model_config *mc, char *err, size_t err_len) {
    json_error_t je;
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, err_len, "%s:%d:%d: %s", file, je.line, je.column, je.text);
        return -1;
    }
    int rc = 0;
    if (!json_is_object(root)) {
        snprintf(err, err_len, "%s: expected a JSON object", file);
        rc = -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (rc)
            break;
        if (strcmp(k, "name") == 0) {
            const char *s = json_string_value(v);
            if (!s || !*s || strlen(s) >= sizeof(mc->name) || strchr(s, '/')) {
                snprintf(err, err_len,
                         "%s: key 'name': expected a non-empty string of < %zu bytes "
                         "without '/'",
                         file, sizeof(mc->name));
                rc = -1;
            } else {
                snprintf(mc->name, sizeof(mc->name), "%s", s);
            }
        } else if (strcmp(k, "input") == 0) {
            rc = parse_input(v, file, &mc->input, err, err_len);
        } else if (strcmp(k, "max_batch") == 0) {
            rc = int_key(v, file, "max_batch", 1, 1024, &mc->max_batch, err, err_len);
            mc->max_batch_set = 1;
        } else if (strcmp(k, "precision") == 0) {
            const char *s = json_string_value(v);
            if (s && (strcmp(s, "fp32") == 0 || strcmp(s, "int8") == 0)) {
                mc->int8 = strcmp(s, "int8") == 0;
            } else {
                snprintf(err, err_len, "%s: key 'precision': expected \"fp32\" or \"int8\"", file);
                rc = -1;
            }
        } else if (strcmp(k, "version_policy") == 0) {
            if (!json_is_object(v)) { /* read by the server's registry (server/registry.c) */
                snprintf(err, err_len, "%s: key 'version_policy': expected an object", file);
                rc = -1;
            }
        } else if (strcmp(k, "description") == 0) {
            if (!json_is_string(v)) {
                snprintf(err, err_len, "%s: key 'description': expected a string", file);
                rc = -1;
            }
        } else {
            snprintf(err, err_len, "%s: key '%s': unknown key", file, k);
            rc = -1;
        }
    }
    json_decref(root);
    return rc;
}

static int read_labels(const char *file, model_config *mc, char *err, size_t err_len) {
    FILE *f = fopen(file, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, err_len, "%s: %s", file, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, lcap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if ((size_t)mc->num_labels == lcap) {
            size_t nc = lcap ? lcap * 2 : 64;
            char **nl = nc <= MAX_LABELS ? realloc(mc->labels, nc * sizeof(char *)) : NULL;
            if (!nl) {
                snprintf(err, err_len, "%s: too many labels or out of memory", file);
                rc = -1;
                break;
            }
            mc->labels = nl;
            lcap = nc;
        }
        if (!(mc->labels[mc->num_labels] = dup_str(line))) {
            snprintf(err, err_len, "%s: out of memory", file);
            rc = -1;
            break;
        }
        mc->num_labels++;
    }
    /* A trailing empty line is a file ending in "\n\n": not a class. */
    for (int i = 0; rc == 0 && i < mc->num_labels; i++) {
        long at = utf8_invalid_at(mc->labels[i], strlen(mc->labels[i]));
        if (at >= 0) {
            snprintf(err, err_len,
                     "%s:%d: label is not valid UTF-8 (byte %ld of the line is 0x%02X); save the "
                     "file as UTF-8",
                     file, i + 1, at + 1, (unsigned char)mc->labels[i][at]);
            rc = -1;
        }
    }
    while (rc == 0 && mc->num_labels > 0 && mc->labels[mc->num_labels - 1][0] == '\0')
        free(mc->labels[--mc->num_labels]);
    if (rc == 0 && ferror(f)) {
        snprintf(err, err_len, "%s: read error", file);
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* Sets name (the file's stem), onnx_path and dir (the file's directory) of a
 * bare ONNX file. Returns 0, or -1 when out of memory. */
static int bare_file(const char *path, model_config *out, char *err, size_t err_len) {
    base_name(path, ".onnx", out->name, sizeof(out->name));
    out->onnx_path = dup_str(path);
    const char *slash = strrchr(path, '/');
    out->dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : dup_str(".");
    if (!out->onnx_path || !out->dir) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    return 0;
}

int model_config_resolve(const char *path, model_config *out, char *err, size_t err_len) {
    struct stat sb;
    if (path && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return model_config_load(path, out, err, err_len);
    memset(out, 0, sizeof(*out));
    out->input = img_default_params();
    if (!path) {
        snprintf(err, err_len, "(null): no path");
        return -1;
    }
    int rc = bare_file(path, out, err, err_len);
    if (rc == 0 && !(out->tuned_path = path_join(out->dir, TUNED_FILE))) {
        snprintf(err, err_len, "%s: out of memory", path);
        rc = -1;
    }
    if (rc)
        model_config_free(out);
    return rc;
}

static int load_any(const char *mdir, const char *vdir, model_config *out, char *err,
                    size_t err_len) {
    const char *path = vdir ? vdir : mdir;
    memset(out, 0, sizeof(*out));
    out->input = img_default_params();
    out->max_batch = 8;
    struct stat sb;
    if (!path || stat(path, &sb) != 0) {
        snprintf(err, err_len, "%s: %s", path ? path : "(null)",
                 path ? strerror(errno) : "no path");
        return -1;
    }
    int rc = 0;
    if (S_ISDIR(sb.st_mode)) {
        base_name(vdir ? mdir : path, NULL, out->name, sizeof(out->name));
        out->dir = dup_str(path);
        out->onnx_path = path_join(path, "model.onnx");
        char *cfg = path_join(path, "config.json");
        char *lab = path_join(path, "labels.txt");
        if (vdir && cfg && stat(cfg, &sb) != 0) { /* the model's, unless the version has one */
            free(cfg);
            cfg = path_join(mdir, "config.json");
        }
        if (vdir && lab && stat(lab, &sb) != 0) {
            free(lab);
            lab = path_join(mdir, "labels.txt");
        }
        if (!out->dir || !out->onnx_path || !cfg || !lab) {
            snprintf(err, err_len, "%s: out of memory", path);
            rc = -1;
        } else if (stat(out->onnx_path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            snprintf(err, err_len, "%s: model directory has no model.onnx", path);
            rc = -1;
        } else if (stat(cfg, &sb) == 0 && parse_config(cfg, out, err, err_len) != 0) {
            rc = -1;
        } else if (read_labels(lab, out, err, err_len) != 0) {
            rc = -1;
        }
        free(cfg);
        free(lab);
    } else if (S_ISREG(sb.st_mode) && ends_with(path, ".onnx")) {
        rc = bare_file(path, out, err, err_len);
    } else {
        snprintf(err, err_len, "%s: not a model directory or a .onnx file", path);
        rc = -1;
    }
    long at = rc ? -1 : utf8_invalid_at(out->name, strlen(out->name));
    if (at >= 0) {
        snprintf(err, err_len,
                 "%s: model name '%s' (from its file or directory name) is not valid UTF-8 "
                 "(byte %ld is 0x%02X); rename it or set \"name\" in config.json",
                 path, out->name, at + 1, (unsigned char)out->name[at]);
        rc = -1;
    }
    if (rc == 0 && (!(out->tuned_path = path_join(out->dir, TUNED_FILE)) ||
                    (out->int8 && !(out->quant_path = path_join(out->dir, ENGINE_QUANT_FILE))))) {
        snprintf(err, err_len, "%s: out of memory", path);
        rc = -1;
    }
    if (rc)
        model_config_free(out);
    return rc;
}

int model_config_load(const char *path, model_config *out, char *err, size_t err_len) {
    return load_any(path, NULL, out, err, err_len);
}

int model_config_load_version(const char *model_dir, const char *version_dir, model_config *out,
                              char *err, size_t err_len) {
    return load_any(model_dir, version_dir, out, err, err_len);
}

engine_load_params model_config_engine_params(const model_config *mc, int max_batch) {
    engine_load_params p = engine_load_default_params();
    if (max_batch > 0)
        p.max_batch = max_batch;
    else if (mc && mc->max_batch > 0)
        p.max_batch = mc->max_batch;
    if (mc && mc->int8)
        p.quant_path = mc->quant_path;
    if (mc) {
        p.conv_choices = mc->conv_choices;
        p.nconv_choices = mc->nconv_choices;
    }
    return p;
}

int model_config_take_conv_choices(model_config *mc, struct tuned_pick_s *pick) {
    free(mc->conv_choices);
    mc->conv_choices = pick->convs;
    mc->nconv_choices = pick->nconvs;
    pick->convs = NULL;
    pick->nconvs = 0;
    return mc->nconv_choices;
}

const char *model_config_label(const model_config *mc, int i, char *buf) {
    if (mc && i >= 0 && i < mc->num_labels && mc->labels)
        return mc->labels[i];
    snprintf(buf, 16, "%d", i);
    return buf;
}

void model_config_free(model_config *mc) {
    if (!mc)
        return;
    for (int i = 0; i < mc->num_labels; i++)
        free(mc->labels[i]);
    free(mc->labels);
    free(mc->onnx_path);
    free(mc->dir);
    free(mc->quant_path);
    free(mc->tuned_path);
    free(mc->conv_choices);
    mc->conv_choices = NULL;
    mc->nconv_choices = 0;
    mc->labels = NULL;
    mc->onnx_path = mc->dir = mc->quant_path = mc->tuned_path = NULL;
    mc->num_labels = 0;
}
