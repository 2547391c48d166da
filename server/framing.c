/* framing.c — RFC 9112 framing rules for a request's header fields (framing.h). */
#include "framing.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

static int is_tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

void framing_field(framing_scan *f, const char *key, size_t key_size, const char *value) {
    for (size_t i = 0; i < key_size; i++)
        if (!is_tchar((unsigned char)key[i]))
            f->bad = "a header name holds whitespace or a character a token may not hold "
                     "(whitespace before the colon, or a folded line)";
    if (!key_size)
        f->bad = "a header line without a name";
    ptrdiff_t gap = value - (key + key_size);
    int in_place = gap >= 1 && gap <= 64 && key[key_size] == '\0';
    for (ptrdiff_t i = 1; in_place && i < gap; i++)
        if (key[key_size + (size_t)i] != ' ' && key[key_size + (size_t)i] != '\t')
            in_place = 0;
    if (!in_place)
        f->bad = "a folded header line (obs-fold) or a malformed field line";
    if (key_size == 14 && strncasecmp(key, "Content-Length", 14) == 0)
        f->ncl++;
    if (key_size == 17 && strncasecmp(key, "Transfer-Encoding", 17) == 0) {
        f->nte++;
        f->te = value;
    }
    if (key_size == 4 && strncasecmp(key, "Host", 4) == 0)
        f->nhost++;
}

int framing_verdict(const framing_scan *f, int http10, int allow_chunked, int *chunked,
                    const char **code, const char **msg) {
    *code = "bad_request";
    *chunked = f->nte == 1 && strcasecmp(f->te, "chunked") == 0;
    if (f->bad)
        *msg = f->bad;
    else if (f->ncl > 1)
        *msg = "more than one Content-Length header";
    else if (f->nte > 1)
        *msg = "more than one Transfer-Encoding header";
    else if (f->ncl && f->nte)
        *msg = "Content-Length together with Transfer-Encoding";
    else if (f->nte && http10)
        *msg = "Transfer-Encoding in an HTTP/1.0 request";
    else if (f->nte && !*chunked)
        *msg = "Transfer-Encoding other than exactly chunked";
    else if (!http10 && f->nhost != 1)
        *msg = "an HTTP/1.1 request needs exactly one Host header";
    else if (*chunked && !allow_chunked) {
        *code = "length_required";
        *msg = "send the body with a Content-Length (chunked request bodies are not accepted)";
        return 411;
    } else
        return 0;
    return 400;
}
