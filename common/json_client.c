/* json_client.c — JSON strings of client bytes (see json_client.h). */
#include "json_client.h"

#include "utf8.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

json_t *json_client_string(const char *s) {
    json_t *j = json_string(s ? s : "");
    if (j)
        return j;
    size_t len = strlen(s), o = 0;
    char *buf = malloc(len * 3 + 1);
    if (!buf)
        return NULL;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        size_t n = utf8_seq(p, (size_t)(end - p));
        if (n) {
            memcpy(buf + o, p, n);
            o += n, p += n;
        } else {
            memcpy(buf + o, "\xef\xbf\xbd", 3);
            o += 3, p++;
        }
    }
    buf[o] = 0;
    j = json_string(buf);
    free(buf);
    return j;
}
