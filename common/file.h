/*
 * file.h — whole-file reads for the CLI and the .npy reader.
 */
#ifndef RESNETD_FILE_H
#define RESNETD_FILE_H

#include <stddef.h>

/* Reads all of path into *data (malloc'd, one spare byte after the end;
 * the caller frees) and its size into *len. max_bytes > 0 refuses larger
 * files. Returns 0, or -1 with one line in err ("PATH: cause"); when the
 * file cannot be opened errno is fopen's. */
int file_read_all(const char *path, size_t max_bytes, void **data, size_t *len, char *err,
                  size_t err_len);

#endif
