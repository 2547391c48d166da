/* classify_output.c — the output side of `resnetd classify` (classify.h):
 * finished slots printed in input order as JSON lines or CSV rows, the
 * progress bar on stderr and the thread that counts the inputs for it. */
#include "classify.h"

#include "json.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void *cl_counter_main(void *arg) {
    cl *c = arg;
    ci_iter *it = ci_open(c->inputs, c->ninputs, c->recursive, c->all_files, NULL);
    long long n = 0;
    ci_entry e;
    while (it && !atomic_load(&c->counter_stop) && ci_next(it, &e)) {
        free(e.path);
        n++;
    }
    if (it && !ci_failed(it) && !ci_saw_stdin(it) && !atomic_load(&c->counter_stop))
        atomic_store(&c->total, n);
    ci_close(it);
    return NULL;
}

static void progress_draw(cl *c, uint64_t done, int final) {
    double el = cl_now() - c->t_start;
    double rate = el > 0 ? (double)done / el : 0;
    long long total = atomic_load(&c->total);
    char line[160];
    int w = 0;
    if (total > 0) {
        double f = (double)done / (double)total;
        if (f > 1)
            f = 1;
        char bar[26];
        int fill = (int)(f * 24);
        for (int i = 0; i < 24; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[24] = 0;
        w = snprintf(line, sizeof line, "[%s] %llu/%lld %3d%%  %.1f img/s", bar,
                     (unsigned long long)done, total, (int)(f * 100), rate);
        if (!final && rate > 0) {
            long long eta = (long long)(((double)total - (double)done) / rate + 0.5);
            snprintf(line + w, sizeof line - (size_t)w, "  ETA %lld:%02lld", eta / 60, eta % 60);
        }
    } else {
        snprintf(line, sizeof line, "%llu files  %.1f img/s", (unsigned long long)done, rate);
    }
    fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
    fflush(stderr);
}

/* A CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* The slot's CSV rows: file,rank,index,label,probability,error,message.
 * Strings go through json_client_string, so invalid UTF-8 in a file name
 * becomes U+FFFD as in the JSON output. Returns 0 or -1 (out of memory). */
static int write_csv(cl *c, const cl_slot *s) {
    json_t *name = json_client_string(s->path);
    if (!name)
        return -1;
    const char *file = json_string_value(name);
    if (s->err_code) {
        json_t *m = json_client_string(s->err_msg);
        if (!m) {
            json_decref(name);
            return -1;
        }
        csv_field(c->out, file);
        fputs(",,,,,", c->out);
        csv_field(c->out, s->err_code);
        fputc(',', c->out);
        csv_field(c->out, json_string_value(m));
        fputc('\n', c->out);
        json_decref(m);
    }
    for (int i = 0; !s->err_code && i < s->npreds; i++) {
        char buf[16];
        const char *label = model_config_label(&c->mc, s->preds[i].index, buf);
        json_t *l = json_client_string(label);
        if (!l) {
            json_decref(name);
            return -1;
        }
        csv_field(c->out, file);
        fprintf(c->out, ",%d,%d,", i + 1, s->preds[i].index);
        csv_field(c->out, json_string_value(l));
        fprintf(c->out, ",%.6g,,\n", s->preds[i].probability);
        json_decref(l);
    }
    json_decref(name);
    return 0;
}

/* Writes the slot's line(s). Returns 0, or -1 when out of memory. */
static int write_slot(cl *c, const cl_slot *s) {
    if (c->format == FMT_CSV)
        return write_csv(c, s);
    json_result r = {s->path, s->err_code ? NULL : s->preds, s->npreds, s->err_code, s->err_msg};
    char *line = json_classify_line(&c->mc, &r);
    if (!line)
        return -1;
    fputs(line, c->out);
    fputc('\n', c->out);
    free(line);
    return 0;
}

int cl_writer(cl *c) {
    int rc = 0;
    double last_draw = 0;
    if (c->format == FMT_CSV)
        fputs("file,rank,index,label,probability,error,message\n", c->out);
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && c->emitted < c->next_seq &&
               c->slots[c->emitted % c->window].state == SL_DONE) {
            cl_slot *s = &c->slots[c->emitted % c->window];
            pthread_mutex_unlock(&c->mu);
            int wr = write_slot(c, s);
            int err = wr || ferror(c->out);
            double t = c->progress ? cl_now() : 0;
            if (c->progress && t - last_draw >= CL_PROGRESS_MS / 1e3) {
                progress_draw(c, c->emitted + 1, 0); /* emitted: only this thread writes it */
                last_draw = t;
            }
            pthread_mutex_lock(&c->mu);
            if (err) {
                fprintf(stderr, "resnetd classify: %s\n",
                        wr ? "out of memory" : "cannot write the output");
                c->stop = 1;
                rc = 1;
                break;
            }
            if (s->err_code)
                c->failed++;
            free(s->path);
            s->path = NULL;
            s->state = SL_FREE;
            c->emitted++;
            pthread_cond_broadcast(&c->cv_free);
        }
        if (c->stop || (c->input_done && c->emitted == c->next_seq))
            break;
        uint64_t done = c->emitted;
        pthread_mutex_unlock(&c->mu);
        if (fflush(c->out) != 0) {
            fprintf(stderr, "resnetd classify: cannot write the output: %s\n", strerror(errno));
            pthread_mutex_lock(&c->mu);
            c->stop = 1;
            rc = 1;
            break;
        }
        double t = cl_now();
        if (c->progress && t - last_draw >= CL_PROGRESS_MS / 1e3) {
            progress_draw(c, done, 0);
            last_draw = t;
        }
        pthread_mutex_lock(&c->mu);
        if (c->stop ||
            (c->emitted < c->next_seq && c->slots[c->emitted % c->window].state == SL_DONE))
            continue;
        if (c->input_done && c->emitted == c->next_seq)
            break;
        if (c->progress) {
            struct timespec ts;
            cl_abs_deadline(&ts, CL_PROGRESS_MS / 1e3);
            pthread_cond_timedwait(&c->cv_done, &c->mu, &ts);
        } else {
            pthread_cond_wait(&c->cv_done, &c->mu);
        }
    }
    if (c->oom && !rc) {
        fprintf(stderr, "resnetd classify: out of memory while listing the inputs\n");
        rc = 1;
    }
    c->stop = 1;
    pthread_cond_broadcast(&c->cv_ready);
    pthread_cond_broadcast(&c->cv_free);
    pthread_cond_broadcast(&c->cv_mem);
    uint64_t done = c->emitted;
    pthread_mutex_unlock(&c->mu);
    if (fflush(c->out) != 0 && !rc) {
        fprintf(stderr, "resnetd classify: cannot write the output: %s\n", strerror(errno));
        rc = 1;
    }
    if (c->progress) {
        if (c->input_done && !rc)
            atomic_store(&c->total, (long long)done);
        progress_draw(c, done, 1);
    }
    return rc;
}
