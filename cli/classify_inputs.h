/*
 * classify_inputs.h — the inputs of `resnetd classify` expanded, lazily and in
 * order, into one path (or one error) at a time.
 *
 * An argument is a file, a directory, "@LIST" (a file of paths, one a line)
 * or "-" (paths on stdin, one a line). A directory yields its entries sorted
 * by name (byte order, so the order is the same on every machine), skipping
 * names that start with '.'; without `recursive` only its regular files,
 * with it sub-directories too, each expanded at its sorted position. Files
 * found in directories must end in an image extension (.jpg .jpeg .jpe .png
 * .webp, any case) unless `all_files`; a file named explicitly (argument or
 * list line) is always taken. A list line is a path like an argument (a
 * directory is expanded), but "-" and "@..." in a list are plain names.
 * Symbolic links are followed; a directory that is its own ancestor (a link
 * loop) is an error entry, as are unreadable directories and lists, missing
 * paths, dangling links, paths longer than PATH_MAX and named paths that are
 * neither a regular file nor a directory. Nothing here opens a file to read
 * it: the caller does.
 *
 * Cost: memory is one directory's sorted names per level of the walk being
 * expanded (levels are bounded by CI_MAX_DEPTH) and one line buffer; every
 * call does O(1) stat()s and at most one directory listing.
 */
#ifndef RESNETD_CLASSIFY_INPUTS_H
#define RESNETD_CLASSIFY_INPUTS_H

#include <stdio.h>

#define CI_MAX_DEPTH 64 /* directory levels below an argument; deeper is an error entry */

typedef struct ci_iter ci_iter;

typedef struct {
    char *path;           /* malloc'd; the caller owns it (frees it) */
    const char *err_code; /* NULL for a file to classify; else "io_error", "symlink_loop" */
    char err_msg[320];
    long long size; /* the file's size when listed (a decoding-order hint) */
} ci_entry;

/* An iterator over args[0..n) (not copied: they must outlive it). stdin_f is
 * what "-" reads; NULL is the progress counter's pass, which must not consume
 * what only the real pass may read: "-" and any "@LIST" that is not a regular
 * file (a pipe) are skipped and set ci_saw_stdin. NULL when out of memory. */
ci_iter *ci_open(char *const *args, int n, int recursive, int all_files, FILE *stdin_f);

/* The next entry: 1 and *e filled, 0 at the end (or out of memory: then 0
 * and ci_failed says so). */
int ci_next(ci_iter *it, ci_entry *e);

/* 1 when the next ci_next would wait: it is reading a list from a pipe or a
 * terminal (stdin) that has no line ready. Cheap (one poll). */
int ci_would_block(ci_iter *it);

/* 1 when an allocation failed (the expansion stopped early). */
int ci_failed(const ci_iter *it);

/* 1 when the counter's pass skipped an input (its count is not the total). */
int ci_saw_stdin(const ci_iter *it);

/* Frees the iterator (closes list files it opened, never stdin_f). NULL is a no-op. */
void ci_close(ci_iter *it);

#endif
