/* classify_inputs.c — `resnetd classify`'s input expansion (classify_inputs.h). */
#include "classify_inputs.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define CI_STR2(x) #x
#define CI_STR(x) CI_STR2(x)

typedef struct {
    char *dir; /* as it will prefix its entries */
    char **names;
    size_t n, i;
    dev_t dev;
    ino_t ino;
} ci_frame;

struct ci_iter {
    char *const *args;
    int nargs, argi;
    int recursive, all_files;
    FILE *stdin_f;
    FILE *list; /* the @LIST or stdin being read; NULL when none */
    char *list_name;
    ci_frame frames[CI_MAX_DEPTH + 1]; /* [0] is the named directory */
    int depth;                         /* frames in use */
    char line[PATH_MAX + 2];
    char why[160]; /* an error entry's detail being composed */
    int failed, saw_stdin;
};

ci_iter *ci_open(char *const *args, int n, int recursive, int all_files, FILE *stdin_f) {
    ci_iter *it = calloc(1, sizeof(*it));
    if (!it)
        return NULL;
    it->args = args;
    it->nargs = n;
    it->recursive = recursive;
    it->all_files = all_files;
    it->stdin_f = stdin_f;
    return it;
}

int ci_failed(const ci_iter *it) {
    return it->failed;
}

int ci_saw_stdin(const ci_iter *it) {
    return it->saw_stdin;
}

static void frame_free(ci_frame *f) {
    for (size_t i = f->i; i < f->n; i++)
        free(f->names[i]);
    free(f->names);
    free(f->dir);
    memset(f, 0, sizeof(*f));
}

static void end_list(ci_iter *it) {
    if (it->list && it->list != it->stdin_f)
        fclose(it->list);
    it->list = NULL;
    free(it->list_name);
    it->list_name = NULL;
}

void ci_close(ci_iter *it) {
    if (!it)
        return;
    while (it->depth > 0)
        frame_free(&it->frames[--it->depth]);
    end_list(it);
    free(it);
}

static int image_name(const char *name) {
    static const char *const ext[] = {"jpg", "jpeg", "jpe", "png", "webp"};
    const char *dot = strrchr(name, '.');
    if (!dot)
        return 0;
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
        if (strcasecmp(dot + 1, ext[i]) == 0)
            return 1;
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "what: strerror(err)" in it->why. */
static const char *why(ci_iter *it, const char *what, int err) {
    snprintf(it->why, sizeof it->why, "%s: %s", what, strerror(err));
    return it->why;
}

/* Fills an error entry for path (copied). Returns 1 (an entry), or 0 with
 * it->failed set when out of memory. */
static int error_entry(ci_iter *it, ci_entry *e, const char *path, const char *code,
                       const char *detail) {
    e->path = strdup(path);
    if (!e->path) {
        it->failed = 1;
        return 0;
    }
    e->err_code = code;
    snprintf(e->err_msg, sizeof e->err_msg, "%s: %s", path, detail);
    return 1;
}

/* Lists dir (already stat'ed as st) into a new frame. Returns 0, -1 with
 * errno set when it cannot be read, -2 when out of memory. */
static int push_dir(ci_iter *it, const char *dir, const struct stat *st) {
    ci_frame *f = &it->frames[it->depth];
    memset(f, 0, sizeof(*f));
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    size_t cap = 0;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            rc = errno ? -1 : 0;
            break;
        }
        if (de->d_name[0] == '.')
            continue; /* ".", ".." and hidden entries */
        if (f->n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nn = realloc(f->names, nc * sizeof(char *));
            if (!nn) {
                rc = -2;
                break;
            }
            f->names = nn;
            cap = nc;
        }
        if (!(f->names[f->n] = strdup(de->d_name))) {
            rc = -2;
            break;
        }
        f->n++;
    }
    int e = errno;
    closedir(d);
    if (rc == 0) {
        size_t len = strlen(dir);
        f->dir = malloc(len + 2);
        if (!f->dir)
            rc = -2;
        else /* entries are dir + "/" + name, without doubling a trailing slash */
            snprintf(f->dir, len + 2, "%s%s", dir, len && dir[len - 1] == '/' ? "" : "/");
    }
    if (rc != 0) {
        frame_free(f);
        errno = e;
        return rc;
    }
    if (f->n > 1)
        qsort(f->names, f->n, sizeof(char *), by_name);
    it->depth++;
    return 0;
}

/* A path named by an argument or a list line. Returns 1 with *e filled, 0
 * when it became a directory frame (or, with it->failed, out of memory). */
static int named(ci_iter *it, const char *path, ci_entry *e) {
    struct stat st;
    if (strlen(path) >= PATH_MAX)
        return error_entry(it, e, path, "io_error", "path longer than PATH_MAX");
    if (stat(path, &st) != 0)
        return error_entry(it, e, path, "io_error", strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        int rc = push_dir(it, path, &st);
        if (rc == -2)
            it->failed = 1;
        if (rc == -1)
            return error_entry(it, e, path, "io_error",
                               why(it, "cannot list the directory", errno));
        return 0;
    }
    if (!S_ISREG(st.st_mode))
        return error_entry(it, e, path, "io_error", "not a regular file or a directory");
    if (!(e->path = strdup(path))) {
        it->failed = 1;
        return 0;
    }
    e->err_code = NULL;
    e->err_msg[0] = 0;
    e->size = (long long)st.st_size;
    return 1;
}

/* The next entry of the innermost directory frame: 1 with *e, 0 when that
 * name gave nothing (skipped, or a frame was pushed or popped). */
static int from_frame(ci_iter *it, ci_entry *e) {
    ci_frame *f = &it->frames[it->depth - 1];
    if (f->i == f->n) {
        frame_free(f);
        it->depth--;
        return 0;
    }
    char *name = f->names[f->i];
    f->names[f->i++] = NULL;
    size_t dl = strlen(f->dir), nl = strlen(name);
    char *path = malloc(dl + nl + 1);
    if (!path) {
        free(name);
        it->failed = 1;
        return 0;
    }
    memcpy(path, f->dir, dl);
    memcpy(path + dl, name, nl + 1);
    int wanted = it->all_files || image_name(name), rc = 0;
    free(name);
    struct stat st;
    if (dl + nl >= PATH_MAX) {
        rc = wanted && error_entry(it, e, path, "io_error", "path longer than PATH_MAX");
    } else if (stat(path, &st) != 0) { /* a dangling link, or gone since the listing */
        rc = wanted && error_entry(it, e, path, "io_error", strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        if (it->recursive) {
            int loop = -1;
            for (int k = 0; k < it->depth && loop < 0; k++)
                if (it->frames[k].dev == st.st_dev && it->frames[k].ino == st.st_ino)
                    loop = k;
            if (loop >= 0) {
                snprintf(it->why, sizeof it->why,
                         "a link back to its ancestor directory %s, not followed",
                         it->frames[loop].dir);
                rc = error_entry(it, e, path, "symlink_loop", it->why);
            } else if (it->depth > CI_MAX_DEPTH) {
                rc = error_entry(it, e, path, "io_error",
                                 "more than " CI_STR(CI_MAX_DEPTH) " directory levels deep");
            } else {
                int pr = push_dir(it, path, &st);
                if (pr == -2)
                    it->failed = 1;
                if (pr == -1)
                    rc = error_entry(it, e, path, "io_error",
                                     why(it, "cannot list the directory", errno));
            }
        }
    } else if (S_ISREG(st.st_mode) && wanted) {
        e->path = path;
        e->err_code = NULL;
        e->err_msg[0] = 0;
        e->size = (long long)st.st_size;
        return 1;
    }
    free(path);
    return rc;
}

/* The next line of the list being read: 1 with *e, 0 when it gave nothing. */
static int from_list(ci_iter *it, ci_entry *e) {
    if (!fgets(it->line, sizeof it->line, it->list)) {
        int rc = 0;
        if (ferror(it->list))
            rc = error_entry(it, e, it->list_name, "io_error",
                             why(it, "cannot read the list", errno));
        end_list(it);
        return rc;
    }
    size_t n = strlen(it->line);
    if (n && it->line[n - 1] != '\n' && !feof(it->list)) { /* longer than the buffer */
        int c;
        while ((c = fgetc(it->list)) != EOF && c != '\n')
            ;
        memcpy(it->line + 60, "...", 4);
        return error_entry(it, e, it->line, "io_error", "a list line longer than PATH_MAX");
    }
    while (n && (it->line[n - 1] == '\n' || it->line[n - 1] == '\r'))
        it->line[--n] = 0;
    if (!n)
        return 0;
    return named(it, it->line, e);
}

/* A list that is not a regular file (a pipe, a terminal) is read without
 * stdio's read-ahead, so that poll() on its descriptor tells ci_would_block
 * whether a line is waiting: one read() per byte, a few dozen per path. */
static void unbuffer_if_pipe(FILE *f) {
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && !S_ISREG(st.st_mode))
        setvbuf(f, NULL, _IONBF, 0);
}

int ci_would_block(ci_iter *it) {
    if (it->failed || it->depth > 0 || !it->list)
        return 0;
    struct stat st;
    if (fstat(fileno(it->list), &st) != 0 || S_ISREG(st.st_mode))
        return 0;
    struct pollfd p = {fileno(it->list), POLLIN, 0};
    return poll(&p, 1, 0) == 0;
}

int ci_next(ci_iter *it, ci_entry *e) {
    memset(e, 0, sizeof(*e));
    while (!it->failed) {
        if (it->depth > 0) {
            if (from_frame(it, e))
                return 1;
            continue;
        }
        if (it->list) {
            if (from_list(it, e))
                return 1;
            continue;
        }
        if (it->argi == it->nargs)
            return 0;
        const char *a = it->args[it->argi++];
        if (strcmp(a, "-") == 0) {
            if (!it->stdin_f) {
                it->saw_stdin = 1;
                continue;
            }
            it->list = it->stdin_f;
            it->list_name = strdup("-");
            unbuffer_if_pipe(it->list);
        } else if (a[0] == '@') {
            struct stat st;
            if (!it->stdin_f && (stat(a + 1, &st) != 0 || !S_ISREG(st.st_mode))) {
                it->saw_stdin = 1; /* a pipe (@<(find ...)) is read once, by the real pass */
                continue;
            }
            FILE *f = fopen(a + 1, "r");
            if (!f)
                return error_entry(it, e, a, "io_error", why(it, "cannot read the list", errno));
            it->list = f;
            it->list_name = strdup(a);
            unbuffer_if_pipe(f);
        } else {
            if (named(it, a, e))
                return 1;
            continue;
        }
        if (!it->list_name) {
            end_list(it);
            it->failed = 1;
        }
    }
    return 0;
}
