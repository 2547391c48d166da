/*
 * utf8.h — UTF-8 validation (RFC 3629: no overlong forms, no surrogates, at
 * most U+10FFFF), shared by the JSON writers (bytes from clients) and the
 * model reader (labels and names that go into every answer).
 */
#ifndef RESNETD_UTF8_H
#define RESNETD_UTF8_H

#include <stddef.h>

/* Length (1..4) of the well-formed UTF-8 sequence at s[0..n), or 0 when
 * there is none (n == 0, a bad or truncated sequence). */
size_t utf8_seq(const unsigned char *s, size_t n);

/* The offset of the first byte of s[0..n) that is not part of well-formed
 * UTF-8, or -1 when it is all valid. */
long utf8_invalid_at(const char *s, size_t n);

#endif
