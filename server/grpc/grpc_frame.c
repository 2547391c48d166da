/* grpc_frame.c — the pure parts of gRPC over HTTP/2 (grpc_frame.h). */
#include "grpc_frame.h"

#include <stdio.h>
#include <string.h>

int grpc_prefix_parse(const uint8_t p[GRPC_PREFIX], int *compressed, uint32_t *len) {
    if (p[0] > 1)
        return -1;
    *compressed = p[0];
    *len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | (uint32_t)p[4];
    return 0;
}

void grpc_prefix_write(uint8_t p[GRPC_PREFIX], uint32_t len) {
    p[0] = 0;
    p[1] = (uint8_t)(len >> 24);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 8);
    p[4] = (uint8_t)len;
}

int grpc_timeout_parse(const char *v, size_t len, int64_t *ns) {
    if (len < 2 || len > 9)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (v[i] - '0'); /* at most 99999999: no overflow */
    }
    int64_t unit;
    switch (v[len - 1]) {
    case 'H':
        unit = INT64_C(3600000000000);
        break;
    case 'M':
        unit = INT64_C(60000000000);
        break;
    case 'S':
        unit = 1000000000;
        break;
    case 'm':
        unit = 1000000;
        break;
    case 'u':
        unit = 1000;
        break;
    case 'n':
        unit = 1;
        break;
    default:
        return -1;
    }
    *ns = n > INT64_MAX / unit ? INT64_MAX : n * unit;
    return 0;
}

size_t grpc_pct_encode(const char *in, char *out, size_t out_len) {
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    if (!out_len)
        return 0;
    for (const unsigned char *c = (const unsigned char *)in; *c; c++) {
        if (*c >= 0x20 && *c <= 0x7E && *c != '%') {
            if (k + 1 >= out_len)
                break;
            out[k++] = (char)*c;
        } else {
            if (k + 3 >= out_len)
                break;
            out[k++] = '%';
            out[k++] = hex[*c >> 4];
            out[k++] = hex[*c & 15];
        }
    }
    out[k] = 0;
    return k;
}

int grpc_status_from_http(int s) {
    switch (s) {
    case 200:
        return GRPC_OK;
    case 400:
    case 415:
        return GRPC_INVALID_ARGUMENT;
    case 401:
        return GRPC_UNAUTHENTICATED;
    case 404:
        return GRPC_NOT_FOUND;
    case 413:
        return GRPC_RESOURCE_EXHAUSTED;
    case 499:
        return GRPC_CANCELLED;
    case 501:
        return GRPC_UNIMPLEMENTED;
    case 503:
        return GRPC_UNAVAILABLE;
    case 504:
        return GRPC_DEADLINE_EXCEEDED;
    default:
        return GRPC_INTERNAL;
    }
}

int grpc_status_http(int g) {
    switch (g) {
    case GRPC_OK:
        return 200;
    case GRPC_CANCELLED:
        return 499;
    case GRPC_INVALID_ARGUMENT:
        return 400;
    case GRPC_DEADLINE_EXCEEDED:
        return 504;
    case GRPC_NOT_FOUND:
        return 404;
    case GRPC_RESOURCE_EXHAUSTED:
        return 413;
    case GRPC_FAILED_PRECONDITION:
        return 400;
    case GRPC_UNIMPLEMENTED:
        return 501;
    case GRPC_UNAVAILABLE:
        return 503;
    case GRPC_UNAUTHENTICATED:
        return 401;
    default:
        return 500;
    }
}

const char *grpc_status_name(int g) {
    static const char *const names[] = {"OK",
                                        "CANCELLED",
                                        "UNKNOWN",
                                        "INVALID_ARGUMENT",
                                        "DEADLINE_EXCEEDED",
                                        "NOT_FOUND",
                                        "ALREADY_EXISTS",
                                        "PERMISSION_DENIED",
                                        "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION",
                                        "ABORTED",
                                        "OUT_OF_RANGE",
                                        "UNIMPLEMENTED",
                                        "INTERNAL",
                                        "UNAVAILABLE",
                                        "DATA_LOSS",
                                        "UNAUTHENTICATED"};
    return g >= 0 && g <= 16 ? names[g] : "UNKNOWN";
}
