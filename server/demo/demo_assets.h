/*
 * demo_assets.h — the demo page's files, embedded in the binary at build
 * time (server/demo/demo.cmake turns index.html, app.js and style.css into
 * the generated demo_assets.c). Read-only; they live as long as the program.
 */
#ifndef RESNETD_DEMO_ASSETS_H
#define RESNETD_DEMO_ASSETS_H

#include <stddef.h>

typedef struct {
    const char *path; /* the URL path it is served at */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} demo_asset;

extern const demo_asset demo_assets[];
extern const int demo_nassets;

#endif
