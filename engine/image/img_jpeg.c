/*
 * img_jpeg.c — JPEG decoding with libjpeg's own API (libjpeg-turbo's
 * jpeglib.h; the only file that sees it).
 *
 * Everything the cost model needs comes from libjpeg itself: jpeg_read_header
 * gives the frame it will decode (no separate marker walk that could
 * disagree with it: "FF 00" is fill to libjpeg, so a frame "hidden" behind it
 * is simply the frame), jpeg_has_multiple_scans tells whether a whole-image
 * coefficient buffer is needed, a progress monitor counts every scan as
 * libjpeg starts it and refuses when the scans or the block visits pass a
 * bound derived from the image size, and max_memory_to_use caps libjpeg's own
 * allocations at the estimate (jmemnobs.c honours it: a coefficient buffer
 * over it fails with "backing store not supported").
 *
 * Matches PIL (which uses the same libjpeg-turbo): ISLOW DCT, fancy
 * upsampling, CMYK/YCCK taken as Adobe-inverted CMYK and converted with PIL's
 * cmyk2rgb (then PIL's L24 luma, band by band, for a gray model); libjpeg
 * warnings are tolerated as PIL does, except a premature end of file, which
 * PIL reports as "image file is truncated".
 */
#include "img_internal.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include <jerror.h>

/* Scans are counted as libjpeg starts them (hidden ones included). A
 * progressive photo has about 10 (libjpeg's default script: 6 for gray);
 * libjpeg-turbo's own fuzzers and djpeg -maxscans use 500 as the limit. */
#define MAX_SCANS 500
/* Block visits over all scans, as a multiple of the image's blocks: the
 * default progression visits a luma block 6 times and a chroma block 4 times.
 * A scan with no data (zero-filled by libjpeg) or an AC scan of end-of-band
 * runs costs ~10 bytes of input but visits every block of its components,
 * so the input size does not bound this work; this does. */
#define MAX_PASSES_PER_BLOCK 32
/* ...plus a floor so that tiny images with many scans are not refused (a
 * million block visits is a few milliseconds). */
#define MIN_VISIT_BUDGET (1u << 20)
/* libjpeg's fixed allocations (structs, Huffman/IDCT/range tables, pools). */
#define JPEG_FIXED_BYTES (1024u << 10)
/* Rows per jpeg_read_scanlines call (libjpeg returns at most its
 * rec_outbuf_height, 1-4, per call; the rest of the array waits). */
#define BAND_ROWS 16

/* PIL's "CMYK;I" unpack + cmyk2rgb, in place (4 bytes -> 3 bytes per pixel). */
static void cmyk_to_rgb(uint8_t *px, size_t npix) {
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *s = px + 4 * i;
        int nk = s[3]; /* 255 - (255 - stored K) */
        uint8_t o[3];
        for (int c = 0; c < 3; c++) {
            int tmp = (255 - s[c]) * nk + 128;
            int v = nk - (((tmp >> 8) + tmp) >> 8);
            o[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        memcpy(px + 3 * i, o, 3);
    }
}

/* The decompressor with our error manager and progress monitor. libjpeg's
 * error_exit longjmps back to the caller's setjmp on jb. */
typedef struct {
    struct jpeg_decompress_struct ci;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr prog;
    jmp_buf jb;
    int eof;           /* libjpeg ran out of data (it would pad with gray) */
    int too_complex;   /* the progress monitor stopped the decode */
    int want_exif;     /* parse the first Exif APP1 before the first scan */
    int orientation;   /* 1..8 */
    int last_scan;     /* input_scan_number seen by the monitor */
    size_t band_bytes; /* the colour band of a decode to L (0: straight into the raster) */
    uint64_t visits;   /* blocks visited by the scans started so far */
    uint64_t max_visits;
    char msg[JMSG_LENGTH_MAX];
} jpg;

static void on_error_exit(j_common_ptr c) {
    jpg *j = (jpg *)c->client_data;
    (*c->err->format_message)(c, j->msg);
    longjmp(j->jb, 1);
}

/* Warnings are tolerated (PIL does), except the end of the data: libjpeg
 * would insert a fake end-of-image and pad with gray; stop at once. */
static void on_emit_message(j_common_ptr c, int level) {
    jpg *j = (jpg *)c->client_data;
    if (level >= 0)
        return; /* trace messages */
    c->err->num_warnings++;
    if (c->err->msg_code == JWRN_JPEG_EOF) {
        j->eof = 1;
        longjmp(j->jb, 1);
    }
}

static void on_output_message(j_common_ptr c) {
    (void)c; /* never print */
}

/* Called by libjpeg before each chunk of input it absorbs: every new scan is
 * charged its blocks before any of its data is decoded. */
static void on_progress(j_common_ptr c) {
    jpg *j = (jpg *)c->client_data;
    j_decompress_ptr ci = &j->ci;
    if (ci->input_scan_number == j->last_scan)
        return;
    j->last_scan = ci->input_scan_number;
    for (int i = 0; i < ci->comps_in_scan; i++)
        j->visits += (uint64_t)ci->cur_comp_info[i]->width_in_blocks *
                     ci->cur_comp_info[i]->height_in_blocks;
    if (ci->input_scan_number > MAX_SCANS || j->visits > j->max_visits) {
        j->too_complex = 1;
        snprintf(j->msg, sizeof(j->msg),
                 "JPEG with %d scans visiting %llu blocks is over the limit (%d scans, %llu "
                 "block visits for this size)",
                 ci->input_scan_number, (unsigned long long)j->visits, MAX_SCANS,
                 (unsigned long long)j->max_visits);
        longjmp(j->jb, 1);
    }
}

/* APP1 without saving it: with jpeg_mem_src the whole file is in the
 * buffer, so the first Exif segment is read in place (no copy, no
 * allocation, however many APP1 segments there are). */
static int src_byte(j_decompress_ptr ci) {
    struct jpeg_source_mgr *s = ci->src;
    if (s->bytes_in_buffer == 0 && !(*s->fill_input_buffer)(ci))
        return -1;
    s->bytes_in_buffer--;
    return *s->next_input_byte++;
}

static boolean on_app1(j_decompress_ptr ci) {
    jpg *j = (jpg *)ci->client_data;
    int hi = src_byte(ci), lo = hi < 0 ? -1 : src_byte(ci);
    if (lo < 0)
        return FALSE;
    long len = ((long)hi << 8 | lo) - 2;
    if (len <= 0)
        return TRUE;
    struct jpeg_source_mgr *s = ci->src;
    if (j->want_exif && ci->input_scan_number == 0 && (size_t)len <= s->bytes_in_buffer &&
        len >= 6 && memcmp(s->next_input_byte, "Exif\0\0", 6) == 0) {
        j->orientation = img_exif_orientation(s->next_input_byte, (size_t)len);
        j->want_exif = 0; /* the first Exif segment only, as PIL */
    }
    (*s->skip_input_data)(ci, len);
    return TRUE;
}

static img_status fail_status(const jpg *j) {
    if (j->eof)
        return IMG_ERR_TRUNCATED;
    if (j->too_complex)
        return IMG_ERR_TOO_COMPLEX;
    switch (j->jerr.msg_code) {
    case JERR_EMPTY_IMAGE:
    case JERR_IMAGE_TOO_BIG:
        return IMG_ERR_BAD_DIMENSIONS;
    case JERR_NO_BACKING_STORE: /* a buffer over max_memory_to_use */
        return IMG_ERR_TOO_COMPLEX;
    case JERR_OUT_OF_MEMORY:
        return IMG_ERR_NOMEM;
    default:
        return IMG_ERR_CORRUPT;
    }
}

static void fail_message(const jpg *j, size_t n, char *err, size_t err_len) {
    if (j->eof)
        snprintf(err, err_len, "JPEG data ends early (%zu bytes, no end-of-image marker)", n);
    else if (j->too_complex)
        snprintf(err, err_len, "%s", j->msg);
    else
        snprintf(err, err_len, "JPEG decoder: %s", j->msg);
}

/* Blocks of the scan's components (what libjpeg visits for the scan). */
static uint64_t scan_blocks(j_decompress_ptr ci, const uint8_t *ids, int ns) {
    uint64_t b = 0;
    for (int i = 0; i < ns; i++)
        for (int c = 0; c < ci->num_components; c++)
            if (ci->comp_info[c].component_id == ids[i]) {
                b += (uint64_t)ci->comp_info[c].width_in_blocks * ci->comp_info[c].height_in_blocks;
                break;
            }
    return b;
}

/* Counts the scans libjpeg will start and the blocks they visit, from the
 * first scan's data (where jpeg_read_header stopped) to EOI, with libjpeg's
 * own marker rules: FF 00 is stuffed data and FF FF fill, RSTn and TEM have
 * no length, every other marker segment is skipped by its length. It only
 * lets a bomb be refused before libjpeg allocates the whole-image coefficient
 * buffer (80-240 MB at 40 MP): the progress monitor, which sees what libjpeg
 * really does, stays the authority, so a walk that stops early (a structure
 * libjpeg would reject) refuses nothing. O(input bytes), no allocation. */
static void count_scans(j_decompress_ptr ci, uint64_t *scans, uint64_t *visits) {
    const uint8_t *p = ci->src->next_input_byte, *end = p + ci->src->bytes_in_buffer;
    uint8_t ids[4];
    for (int i = 0; i < ci->comps_in_scan && i < 4; i++)
        ids[i] = (uint8_t)ci->cur_comp_info[i]->component_id;
    *scans = 1;
    *visits = scan_blocks(ci, ids, ci->comps_in_scan < 4 ? ci->comps_in_scan : 4);
    for (;;) {
        while (p < end && *p != 0xFF)
            p++;
        while (p < end && *p == 0xFF)
            p++;
        if (p >= end)
            return;
        unsigned m = *p++;
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD7))
            continue; /* stuffed byte, TEM, RSTn */
        if (m == 0xD9 || end - p < 2)
            return; /* EOI */
        size_t len = (size_t)p[0] << 8 | p[1];
        if (len < 2 || len > (size_t)(end - p))
            return;
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC)
            return; /* a second frame: libjpeg stops with an error */
        if (m == 0xDA) {
            int ns = len >= 3 ? p[2] : 0;
            if (ns < 1 || ns > 4 || len < (size_t)(6 + 2 * ns))
                return;
            for (int i = 0; i < ns; i++)
                ids[i] = p[3 + 2 * i];
            (*scans)++;
            *visits += scan_blocks(ci, ids, ns);
        }
        p += len;
    }
}

/* Sets up j (after the caller's setjmp), reads the header, picks the DCT
 * scale and fills *h. Errors libjpeg raises longjmp to the caller. */
static img_status jpg_open(jpg *j, const uint8_t *d, size_t n, const img_decode_opts *o,
                           img_header *h, char *err, size_t err_len) {
    j_decompress_ptr ci = &j->ci;
    if (n > (unsigned long)-1) /* jpeg_mem_src takes an unsigned long size */
        n = (unsigned long)-1;
    jpeg_mem_src(ci, d, (unsigned long)n);
    jpeg_set_marker_processor(ci, JPEG_APP0 + 1, on_app1);
    j->want_exif = o->want_orientation;
    j->orientation = 1;
    jpeg_read_header(ci, TRUE); /* no frame → JERR_NO_IMAGE */
    memset(h, 0, sizeof(*h));
    h->w = (int)ci->image_width;
    h->h = (int)ci->image_height;
    h->orientation = j->orientation;
    img_status st = img_check_dims("JPEG", h->w, h->h, o->max_pixels, err, err_len);
    if (st != IMG_OK)
        return st;
    int nc = ci->num_components;
    if (nc != 1 && nc != 3 && nc != 4) {
        snprintf(err, err_len, "JPEG with %d colour components is not supported", nc);
        return IMG_ERR_CORRUPT;
    }
    ci->out_color_space = nc == 1 ? JCS_GRAYSCALE : nc == 3 ? JCS_RGB : JCS_CMYK;
    ci->dct_method = JDCT_ISLOW;
    ci->do_fancy_upsampling = TRUE;
    /* Fast path: the smallest DCT scale keeping the shorter side >= scale_min_short.
       Only scales that divide both sides: otherwise the last, partial block
       becomes a whole pixel and stretches the geometry by up to a pixel of the
       scaled image (a 600x450 JPEG at 1/8 gives 75x57 for 75x56.25), which
       shifts edges enough to flip a real model's top-1. */
    if (o->scale_min_short > 0) {
        for (int denom = 8; denom >= 2; denom /= 2) {
            if (h->w % denom != 0 || h->h % denom != 0)
                continue;
            int sw = h->w / denom, sh = h->h / denom;
            if ((sw < sh ? sw : sh) >= o->scale_min_short) {
                ci->scale_num = 1;
                ci->scale_denom = (unsigned)denom;
                break;
            }
        }
    }
    jpeg_calc_output_dimensions(ci);
    h->out_w = (int)ci->output_width;
    h->out_h = (int)ci->output_height;
    h->out_bpp = ci->output_components;
    h->out_ch = nc == 1 ? 1 : 3;
    /* L wanted from colour: libjpeg decodes BAND_ROWS rows at a time into a
       band that is converted into a 1-byte raster (exactly PIL's RGB -> L
       after its CMYK -> RGB; a third of the raster's memory and page faults). */
    j->band_bytes = 0;
    if (o->gray && nc != 1) {
        j->band_bytes = (size_t)BAND_ROWS * ci->output_width * ci->output_components;
        h->out_bpp = 1;
        h->out_ch = 1;
    }

    /* Cost model. Blocks per component (what every scan of it visits), the
       whole-image coefficient buffer of a multi-scan file (progressive or
       non-interleaved: 64 coefficients x 2 bytes per block, padded to the
       sampling factors as jdcoefct.c does), and the row buffers of the
       main/upsampling stages (a few iMCU rows of the output width). */
    uint64_t blocks = 0, coef = 0;
    for (int c = 0; c < nc; c++) {
        const jpeg_component_info *cp = &ci->comp_info[c];
        uint64_t bw = cp->width_in_blocks, bh = cp->height_in_blocks;
        blocks += bw * bh;
        uint64_t pw = (bw + cp->h_samp_factor - 1) / cp->h_samp_factor * cp->h_samp_factor;
        uint64_t ph = (bh + cp->v_samp_factor - 1) / cp->v_samp_factor * cp->v_samp_factor;
        coef += pw * ph * DCTSIZE2 * sizeof(JCOEF);
    }
    if (!jpeg_has_multiple_scans(ci))
        coef = (uint64_t)D_MAX_BLOCKS_IN_MCU * DCTSIZE2 * sizeof(JCOEF);
    /* (MCUs_per_row is only set when the first scan starts: from the frame.) */
    uint64_t mcu_w = (uint64_t)ci->max_h_samp_factor * DCTSIZE;
    uint64_t row_samples = ((uint64_t)h->w + mcu_w - 1) / mcu_w * mcu_w + 64;
    uint64_t rowbuf = (uint64_t)nc * row_samples * ((uint64_t)ci->max_v_samp_factor * DCTSIZE * 2);
    j->max_visits = (uint64_t)MAX_PASSES_PER_BLOCK * blocks + MIN_VISIT_BUDGET;
    if (jpeg_has_multiple_scans(ci)) {
        uint64_t scans, visits;
        count_scans(ci, &scans, &visits);
        if (scans > MAX_SCANS || visits > j->max_visits) {
            snprintf(err, err_len,
                     "JPEG with %llu scans visiting %llu blocks is over the limit (%d scans, "
                     "%llu block visits for this size)",
                     (unsigned long long)scans, (unsigned long long)visits, MAX_SCANS,
                     (unsigned long long)j->max_visits);
            return IMG_ERR_TOO_COMPLEX;
        }
    }
    h->decoder_bytes = coef + rowbuf + JPEG_FIXED_BYTES + j->band_bytes;
    h->work = j->max_visits * DCTSIZE2 + (uint64_t)h->out_w * h->out_h * h->out_bpp;
    return IMG_OK;
}

static void jpg_init(jpg *j) {
    memset(j, 0, sizeof(*j));
    j->ci.err = jpeg_std_error(&j->jerr);
    j->jerr.error_exit = on_error_exit;
    j->jerr.emit_message = on_emit_message;
    j->jerr.output_message = on_output_message;
    j->ci.client_data = j;
}

img_status img_probe_jpeg(const uint8_t *d, size_t n, const img_decode_opts *o, img_header *h,
                          char *err, size_t err_len) {
    jpg *j = malloc(sizeof(*j));
    if (!j) {
        snprintf(err, err_len, "out of memory creating a JPEG decoder");
        return IMG_ERR_NOMEM;
    }
    jpg_init(j);
    img_status st;
    if (setjmp(j->jb)) {
        st = fail_status(j);
        fail_message(j, n, err, err_len);
    } else {
        jpeg_create_decompress(&j->ci);
        st = jpg_open(j, d, n, o, h, err, err_len);
    }
    jpeg_destroy_decompress(&j->ci);
    free(j);
    return st;
}

img_status img_decode_jpeg(const uint8_t *d, size_t n, const img_decode_opts *o, img_raster *out,
                           int *orientation, char *err, size_t err_len) {
    *orientation = 1;
    jpg *j = malloc(sizeof(*j));
    if (!j) {
        snprintf(err, err_len, "out of memory creating a JPEG decoder");
        return IMG_ERR_NOMEM;
    }
    jpg_init(j);
    /* volatile: modified between setjmp and a possible longjmp */
    uint8_t *volatile px = NULL;
    uint8_t *volatile band = NULL;
    img_status st;
    img_header h;
    if (setjmp(j->jb)) {
        st = fail_status(j);
        fail_message(j, n, err, err_len);
        goto done;
    }
    jpeg_create_decompress(&j->ci);
    if ((st = jpg_open(j, d, n, o, &h, err, err_len)) != IMG_OK)
        goto done;
    *orientation = h.orientation;
    /* libjpeg's own allocations are capped at the estimate (including the
       coefficient buffer, which it sizes at start_decompress); the band is ours. */
    j->ci.mem->max_memory_to_use = (long)(h.decoder_bytes - j->band_bytes);
    j->prog.progress_monitor = on_progress;
    j->ci.progress = &j->prog;
    size_t stride = (size_t)h.out_w * h.out_bpp;
    size_t dstride = (size_t)h.out_w * j->ci.output_components; /* libjpeg's rows */
    px = malloc(stride * h.out_h);
    if (px && j->band_bytes)
        band = malloc(j->band_bytes);
    if (!px || (j->band_bytes && !band)) {
        snprintf(err, err_len, "out of memory decoding a %dx%d JPEG", h.out_w, h.out_h);
        st = IMG_ERR_NOMEM;
        goto done;
    }
    jpeg_start_decompress(&j->ci);
    while (j->ci.output_scanline < j->ci.output_height) {
        JSAMPROW rows[BAND_ROWS];
        JDIMENSION y = j->ci.output_scanline, k = j->ci.output_height - y;
        if (k > BAND_ROWS)
            k = BAND_ROWS;
        for (JDIMENSION i = 0; i < k; i++)
            rows[i] = band ? band + i * dstride : px + (size_t)(y + i) * stride;
        JDIMENSION got = jpeg_read_scanlines(&j->ci, rows, k);
        for (JDIMENSION i = 0; band && i < got; i++) {
            if (j->ci.output_components == 4)
                cmyk_to_rgb(rows[i], (size_t)h.out_w);
            img_rgb_to_l(rows[i], px + (size_t)(y + i) * stride, (size_t)h.out_w);
        }
    }
    jpeg_finish_decompress(&j->ci); /* reads to the end-of-image marker */
    if (h.out_bpp == 4)
        cmyk_to_rgb(px, (size_t)h.out_w * h.out_h);
    out->px = px;
    px = NULL;
    out->w = h.out_w;
    out->h = h.out_h;
    out->ch = h.out_ch;
done:
    jpeg_destroy_decompress(&j->ci);
    free(j);
    free(band);
    free(px);
    return st;
}
