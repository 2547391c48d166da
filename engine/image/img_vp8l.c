/*
 * img_vp8l.c — bounds-checked pre-parse of a WebP lossless bitstream
 * (RFC 9649, "WebP Lossless Bitstream Specification"), written from the
 * specification. Why: libwebp 1.2.4 allocates Huffman tables for every
 * "htree group" the entropy image names (up to 65536, ~12-20 KB each)
 * before it reads a single one of them, and its API cannot report or cap
 * that count. Decoding the header, the transforms' sub-images and the
 * entropy image here gives the exact count, so img_probe bounds a lossless
 * WebP by what libwebp will really allocate.
 *
 * Agreement with libwebp: for a stream libwebp accepts up to its table
 * allocation, every step below reads the same bits the same way (the prefix
 * codes are canonical; a code must be complete unless it has one symbol,
 * which then takes 0 bits; symbols of a "simple" code outside the alphabet
 * are ignored). Anything else — a malformed code, a read past the end, a
 * backward reference out of the image — returns 0 ("unknown") and the
 * caller falls back to the worst case, so a disagreement can only make the
 * bound larger, never smaller.
 */
#include "img_vp8l.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- bit reader -- */

typedef struct {
    const uint8_t *d;
    uint64_t nbits; /* 8 * length */
    uint64_t pos;   /* bits consumed */
    int bad;        /* consumed past the end, or a malformed stream */
} vbits;

/* The next nb (<= 24) bits, least significant first, zeros past the end. */
static uint32_t vb_peek(const vbits *b, int nb) {
    uint64_t byte = b->pos >> 3, nbytes = b->nbits >> 3;
    uint32_t v = 0;
    for (int i = 0; i < 4 && byte + (uint64_t)i < nbytes; i++)
        v |= (uint32_t)b->d[byte + (uint64_t)i] << (8 * i);
    v >>= b->pos & 7;
    return nb >= 32 ? v : v & ((1u << nb) - 1);
}

static void vb_skip(vbits *b, int nb) {
    b->pos += (uint64_t)nb;
    if (b->pos > b->nbits) {
        b->bad = 1;
        b->pos = b->nbits;
    }
}

static uint32_t vb_read(vbits *b, int nb) {
    uint32_t v = vb_peek(b, nb);
    vb_skip(b, nb);
    return v;
}

/* -------------------------------------------------------- prefix codes -- */

#define MAX_CODE_LEN 15
#define LIT_CODES 256
#define LEN_CODES 24
#define DIST_CODES 40
#define MAX_CACHE_BITS 11
#define MAX_ALPHABET (LIT_CODES + LEN_CODES + (1 << MAX_CACHE_BITS))

typedef struct {
    int single;    /* the symbol of a one-symbol code (0 bits), else -1 */
    int maxlen;    /* longest code length: tab has 1 << maxlen entries */
    uint32_t *tab; /* indexed by the next maxlen bits: symbol | length << 16 */
} vcode;

/* Builds a canonical prefix code from lens[0..n) into c (tab has room for
 * 1 << 15 entries). 0 when libwebp would refuse it: a length over 15, no
 * symbol, an over-subscribed or incomplete code (one symbol is fine). */
static int code_build(vcode *c, const uint8_t *lens, int n) {
    int count[MAX_CODE_LEN + 1] = {0}, used = 0, last = -1;
    for (int s = 0; s < n; s++) {
        if (lens[s] > MAX_CODE_LEN)
            return 0;
        count[lens[s]]++;
        if (lens[s])
            used++, last = s;
    }
    if (used == 0)
        return 0;
    c->single = -1;
    if (used == 1) {
        c->single = last;
        c->maxlen = 0;
        return 1;
    }
    int64_t left = 1;
    int maxlen = 0;
    for (int len = 1; len <= MAX_CODE_LEN; len++) {
        left = 2 * left - count[len];
        if (left < 0)
            return 0;
        if (count[len])
            maxlen = len;
    }
    if (left != 0)
        return 0;
    c->maxlen = maxlen;
    /* canonical codes: by length, then by symbol; the stream gives a code's
       first (most significant) bit first, so the table index is the code
       bit-reversed */
    uint32_t next[MAX_CODE_LEN + 2];
    uint32_t code = 0;
    for (int len = 1; len <= MAX_CODE_LEN; len++) {
        code = (code + (uint32_t)count[len - 1] * (len > 1)) << 1;
        next[len] = code;
    }
    for (int s = 0; s < n; s++) {
        int len = lens[s];
        if (!len)
            continue;
        uint32_t cd = next[len]++, rev = 0;
        for (int i = 0; i < len; i++)
            rev |= ((cd >> i) & 1u) << (len - 1 - i);
        for (uint32_t k = rev; k < (1u << maxlen); k += 1u << len)
            c->tab[k] = (uint32_t)s | (uint32_t)len << 16;
    }
    return 1;
}

static int code_read_symbol(vbits *b, const vcode *c) {
    if (c->single >= 0)
        return c->single;
    uint32_t e = c->tab[vb_peek(b, c->maxlen)];
    vb_skip(b, (int)(e >> 16));
    return (int)(e & 0xffff);
}

/* The order in which the code length code's lengths are stored (RFC 9649). */
static const uint8_t CL_ORDER[19] = {17, 18, 0, 1,  2,  3,  4,  5,  16, 6,
                                     7,  8,  9, 10, 11, 12, 13, 14, 15};

/* Reads one prefix code of alphabet_size symbols into c. lens: scratch of
 * MAX_ALPHABET; cltab: scratch of 128 entries for the code length code. */
static int code_read(vbits *b, int alphabet_size, vcode *c, uint8_t *lens, uint32_t *cltab) {
    memset(lens, 0, (size_t)alphabet_size);
    if (vb_read(b, 1)) { /* simple code: one or two symbols of length 1 */
        int two = (int)vb_read(b, 1);
        int s = (int)vb_read(b, vb_read(b, 1) ? 8 : 1);
        if (s < alphabet_size)
            lens[s] = 1;
        if (two) {
            s = (int)vb_read(b, 8);
            if (s < alphabet_size)
                lens[s] = 1;
        }
    } else {
        uint8_t cl[19] = {0};
        int ncl = (int)vb_read(b, 4) + 4;
        for (int i = 0; i < ncl; i++)
            cl[CL_ORDER[i]] = (uint8_t)vb_read(b, 3);
        vcode clc = {.tab = cltab};
        if (b->bad || !code_build(&clc, cl, 19))
            return 0;
        int max_symbol = alphabet_size;
        if (vb_read(b, 1)) {
            int nbits = 2 + 2 * (int)vb_read(b, 3);
            max_symbol = 2 + (int)vb_read(b, nbits);
            if (max_symbol > alphabet_size)
                return 0;
        }
        int prev = 8;
        for (int s = 0; s < alphabet_size;) {
            if (max_symbol-- == 0)
                break;
            int v = code_read_symbol(b, &clc);
            if (b->bad)
                return 0;
            if (v < 16) {
                lens[s++] = (uint8_t)v;
                if (v)
                    prev = v;
                continue;
            }
            static const uint8_t extra[3] = {2, 3, 7}, offset[3] = {3, 3, 11};
            int rep = (int)vb_read(b, extra[v - 16]) + offset[v - 16];
            if (s + rep > alphabet_size)
                return 0;
            memset(lens + s, v == 16 ? prev : 0, (size_t)rep);
            s += rep;
        }
    }
    return !b->bad && code_build(c, lens, alphabet_size);
}

/* ----------------------------------------------------- entropy images -- */

typedef struct {
    uint8_t *lens;    /* MAX_ALPHABET */
    uint32_t *tabs;   /* 5 tables of 1 << 15 entries + 128 for code lengths */
    uint32_t *px;     /* the sub-image being decoded */
    uint64_t px_cap;  /* entries of px */
    uint64_t peak_px; /* largest sub-image decoded */
} vscratch;

/* (xi, yi) of distance codes 1..120 (RFC 9649, "Distance Mapping"). */
static const int8_t DIST_MAP[240] = {
    0,  1, 1,  0, 1,  1, -1, 1, 0, 2, 2,  0, 1,  2, -1, 2, 2,  1, -2, 1, 2,  2, -2, 2, 0, 3, 3,  0,
    1,  3, -1, 3, 3,  1, -3, 1, 2, 3, -2, 3, 3,  2, -3, 2, 0,  4, 4,  0, 1,  4, -1, 4, 4, 1, -4, 1,
    3,  3, -3, 3, 2,  4, -2, 4, 4, 2, -4, 2, 0,  5, 3,  4, -3, 4, 4,  3, -4, 3, 5,  0, 1, 5, -1, 5,
    5,  1, -5, 1, 2,  5, -2, 5, 5, 2, -5, 2, 4,  4, -4, 4, 3,  5, -3, 5, 5,  3, -5, 3, 0, 6, 6,  0,
    1,  6, -1, 6, 6,  1, -6, 1, 2, 6, -2, 6, 6,  2, -6, 2, 4,  5, -4, 5, 5,  4, -5, 4, 3, 6, -3, 6,
    6,  3, -6, 3, 0,  7, 7,  0, 1, 7, -1, 7, 5,  5, -5, 5, 7,  1, -7, 1, 4,  6, -4, 6, 6, 4, -6, 4,
    2,  7, -2, 7, 7,  2, -7, 2, 3, 7, -3, 7, 7,  3, -7, 3, 5,  6, -5, 6, 6,  5, -6, 5, 8, 0, 4,  7,
    -4, 7, 7,  4, -7, 4, 8,  1, 8, 2, 6,  6, -6, 6, 8,  3, 5,  7, -5, 7, 7,  5, -7, 5, 8, 4, 6,  7,
    -6, 7, 7,  6, -7, 6, 8,  5, 7, 7, -7, 7, 8,  6, 8,  7};

/* A length or distance from its prefix symbol and extra bits. */
static uint32_t prefix_value(vbits *b, int sym) {
    if (sym < 4)
        return (uint32_t)sym + 1;
    int extra = (sym - 2) >> 1;
    uint32_t offset = (2u + ((uint32_t)sym & 1u)) << extra;
    return offset + vb_read(b, extra) + 1;
}

static uint64_t sub_size(uint64_t size, int bits) {
    return (size + (1u << bits) - 1) >> bits;
}

/* Decodes an entropy-coded image of xs x ys pixels (no transforms, one
 * group) into s->px. 0 on any error. */
static int decode_image(vbits *b, uint64_t xs, uint64_t ys, vscratch *s) {
    uint64_t total = xs * ys;
    if (total > IMG_VP8L_MAX_SUB_PX)
        return 0;
    if (total > s->px_cap) {
        uint32_t *p = realloc(s->px, total * sizeof(uint32_t));
        if (!p)
            return 0;
        s->px = p, s->px_cap = total;
    }
    if (total > s->peak_px)
        s->peak_px = total;
    int cache_bits = 0;
    if (vb_read(b, 1)) {
        cache_bits = (int)vb_read(b, 4);
        if (cache_bits < 1 || cache_bits > MAX_CACHE_BITS)
            return 0;
    }
    static const int sizes[5] = {LIT_CODES + LEN_CODES, LIT_CODES, LIT_CODES, LIT_CODES,
                                 DIST_CODES};
    vcode c[5]; /* green, red, blue, alpha, distance */
    for (int i = 0; i < 5; i++) {
        c[i].tab = s->tabs + (size_t)i * (1u << MAX_CODE_LEN);
        int n = sizes[i] + (i == 0 && cache_bits ? 1 << cache_bits : 0);
        if (!code_read(b, n, &c[i], s->lens, s->tabs + 5 * (1u << MAX_CODE_LEN)))
            return 0;
    }
    uint32_t cache[1 << MAX_CACHE_BITS] = {0};
    uint32_t *px = s->px;
    uint64_t pos = 0, cached = 0;
    while (pos < total && !b->bad) {
        int g = code_read_symbol(b, &c[0]);
        if (g < LIT_CODES) {
            uint32_t r = (uint32_t)code_read_symbol(b, &c[1]);
            uint32_t bl = (uint32_t)code_read_symbol(b, &c[2]);
            uint32_t a = (uint32_t)code_read_symbol(b, &c[3]);
            px[pos++] = a << 24 | r << 16 | (uint32_t)g << 8 | bl;
        } else if (g < LIT_CODES + LEN_CODES) {
            uint64_t len = prefix_value(b, g - LIT_CODES);
            uint32_t dc = prefix_value(b, code_read_symbol(b, &c[4]));
            int64_t dist;
            if (dc > 120) {
                dist = (int64_t)dc - 120;
            } else {
                dist = DIST_MAP[2 * (dc - 1)] + (int64_t)DIST_MAP[2 * (dc - 1) + 1] * (int64_t)xs;
                if (dist < 1)
                    dist = 1;
            }
            if (b->bad || (uint64_t)dist > pos || len > total - pos)
                return 0;
            for (uint64_t i = 0; i < len; i++, pos++)
                px[pos] = px[pos - (uint64_t)dist];
        } else { /* colour cache: every pixel so far is in it */
            for (; cached < pos; cached++)
                cache[(px[cached] * 0x1e35a7bdu) >> (32 - cache_bits)] = px[cached];
            px[pos++] = cache[g - (LIT_CODES + LEN_CODES)];
        }
    }
    return !b->bad;
}

/* ------------------------------------------------------------- header -- */

uint32_t img_vp8l_table_entries(int cache_bits) {
    /* libwebp's kTableSize: 630 entries for each of red, blue and alpha, 410
       for distance, and for green (280 symbols + the colour cache) the
       sizes zlib's "enough" tool gives for 8-bit root tables */
    static const uint16_t green[12] = {654, 656, 658, 662,  670,  686,
                                       718, 782, 912, 1168, 1680, 2704};
    if (cache_bits < 0 || cache_bits > MAX_CACHE_BITS)
        return 0;
    return 630 * 3 + 410 + green[cache_bits];
}

int img_vp8l_preparse(const uint8_t *d, size_t n, int w, int h, int with_header,
                      img_vp8l_info *info) {
    memset(info, 0, sizeof(*info));
    if (w <= 0 || h <= 0 || n > (SIZE_MAX >> 4))
        return 0;
    vbits b = {.d = d, .nbits = (uint64_t)n * 8};
    if (with_header) {
        if (vb_read(&b, 8) != 0x2f || (int)vb_read(&b, 14) + 1 != w ||
            (int)vb_read(&b, 14) + 1 != h)
            return 0;
        vb_read(&b, 1); /* alpha hint */
        if (vb_read(&b, 3) != 0 || b.bad)
            return 0;
    }
    vscratch s = {0};
    s.lens = malloc(MAX_ALPHABET);
    s.tabs = malloc((5 * (1u << MAX_CODE_LEN) + 128) * sizeof(uint32_t));
    int ok = s.lens && s.tabs;
    uint64_t xs = (uint64_t)w, ys = (uint64_t)h, sub_px = 0;
    unsigned seen = 0;
    while (ok && vb_read(&b, 1)) { /* transforms, each at most once */
        unsigned type = vb_read(&b, 2);
        if (seen & (1u << type)) {
            ok = 0;
            break;
        }
        seen |= 1u << type;
        if (type == 0 || type == 1) { /* predictor, cross-colour: a sub-image */
            int bits = (int)vb_read(&b, 3) + 2;
            uint64_t sx = sub_size(xs, bits), sy = sub_size(ys, bits);
            ok = decode_image(&b, sx, sy, &s);
            sub_px += sx * sy;
        } else if (type == 3) { /* colour indexing: a palette, packed pixels */
            int colours = (int)vb_read(&b, 8) + 1;
            int bits = colours > 16 ? 0 : colours > 4 ? 1 : colours > 2 ? 2 : 3;
            ok = decode_image(&b, (uint64_t)colours, 1, &s);
            sub_px += (uint64_t)colours + 256; /* libwebp expands it to 256 */
            xs = sub_size(xs, bits);
        } /* type 2, subtract green: nothing to read */
    }
    int cache_bits = 0;
    if (ok && vb_read(&b, 1)) {
        cache_bits = (int)vb_read(&b, 4);
        ok = cache_bits >= 1 && cache_bits <= MAX_CACHE_BITS;
    }
    int groups = 1, groups_max = 1;
    if (ok && vb_read(&b, 1)) { /* meta prefix codes: the entropy image */
        int bits = (int)vb_read(&b, 3) + 2;
        uint64_t ex = sub_size(xs, bits), ey = sub_size(ys, bits), epx = ex * ey;
        ok = decode_image(&b, ex, ey, &s);
        sub_px += epx;
        for (uint64_t i = 0; ok && i < epx; i++) {
            int g = (int)((s.px[i] >> 8) & 0xffff);
            if (g >= groups_max)
                groups_max = g + 1;
        }
        groups = groups_max;
        /* libwebp 1.2.4 renumbers the groups in use when the largest index
           is over 1000 or over the pixel count, allocating only those */
        if (ok && ((uint64_t)groups_max > 1000 || (uint64_t)groups_max > xs * ys)) {
            uint8_t *used = calloc(65536 / 8, 1);
            ok = used != NULL;
            groups = 0;
            for (uint64_t i = 0; ok && i < epx; i++) {
                unsigned g = (s.px[i] >> 8) & 0xffff;
                if (!(used[g >> 3] & (1u << (g & 7)))) {
                    used[g >> 3] |= (uint8_t)(1u << (g & 7));
                    groups++;
                }
            }
            free(used);
        }
    }
    ok = ok && !b.bad;
    if (ok) {
        info->groups = groups;
        info->groups_max = groups_max;
        info->cache_bits = cache_bits;
        info->sub_px = sub_px;
        info->xsize = (int)xs;
    }
    info->parse_bytes = MAX_ALPHABET + (5 * (1u << MAX_CODE_LEN) + 128) * sizeof(uint32_t) +
                        s.peak_px * sizeof(uint32_t) + 65536 / 8;
    free(s.px);
    free(s.tabs);
    free(s.lens);
    return ok;
}
