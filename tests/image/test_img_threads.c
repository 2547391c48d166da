/*
 * test_img_threads.c — img_preprocess is thread-safe: four threads decode the
 * same files concurrently (JPEG, PNG, WebP; fast path, EXIF, gray) and every
 * result must equal the single-threaded one. Run under TSan and ASan.
 * usage: test_img_threads FILE...
 */
#include "img.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define ITERS 20
#define MAX_FILES 64

typedef struct {
    unsigned char *data;
    size_t len;
    img_params p;
    float *want; /* single-threaded result */
    size_t n;
} job;

static job jobs[MAX_FILES];
static int njobs;

static void *worker(void *arg) {
    long bad = 0;
    (void)arg;
    for (int it = 0; it < ITERS; it++)
        for (int j = 0; j < njobs; j++) {
            float *out = malloc(jobs[j].n * sizeof(float));
            char err[256];
            if (!out)
                return (void *)1;
            img_status st =
                img_preprocess(jobs[j].data, jobs[j].len, &jobs[j].p, out, err, sizeof(err));
            if (st != IMG_OK || memcmp(out, jobs[j].want, jobs[j].n * sizeof(float)) != 0)
                bad++;
            free(out);
        }
    return (void *)bad;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc && njobs < MAX_FILES; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        job *jb = &jobs[njobs];
        jb->data = malloc(1 << 20);
        jb->len = jb->data ? fread(jb->data, 1, 1 << 20, f) : 0;
        fclose(f);
        jb->p = img_default_params();
        if (njobs % 3 == 1) { /* vary the parameters across files */
            jb->p.color = IMG_COLOR_GRAY;
            jb->p.resize = jb->p.crop_h = jb->p.crop_w = 28;
        } else if (njobs % 3 == 2) {
            jb->p.color = IMG_COLOR_BGR;
            jb->p.fast_path = 0;
            jb->p.resize = 12;
            jb->p.crop_h = jb->p.crop_w = 10;
        }
        jb->n = (size_t)img_channels(&jb->p) * jb->p.crop_h * jb->p.crop_w;
        jb->want = malloc(jb->n * sizeof(float));
        char err[256];
        if (!jb->want ||
            img_preprocess(jb->data, jb->len, &jb->p, jb->want, err, sizeof(err)) != IMG_OK) {
            fprintf(stderr, "%s: %s\n", argv[i], err);
            return 1;
        }
        njobs++;
    }
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, NULL) != 0)
            return 1;
    long bad = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += (long)r;
    }
    for (int j = 0; j < njobs; j++) {
        free(jobs[j].data);
        free(jobs[j].want);
    }
    printf("%d files x %d threads x %d iterations: %ld mismatches\n", njobs, THREADS, ITERS, bad);
    return bad ? 1 : 0;
}
