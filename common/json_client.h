/*
 * json_client.h — JSON strings of bytes that may not be UTF-8 (file names,
 * paths and methods a client sent, echoed in answers and logs).
 */
#ifndef RESNETD_JSON_CLIENT_H
#define RESNETD_JSON_CLIENT_H

/* A JSON string (jansson, new reference; NULL on OOM) of s: invalid UTF-8
 * bytes become U+FFFD instead of making the whole document fail. NULL is the
 * empty string. */
struct json_t *json_client_string(const char *s);

#endif
