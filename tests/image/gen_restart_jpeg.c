/*
 * gen_restart_jpeg.c — test fixture generator: writes a JPEG with restart
 * markers (PIL cannot), optionally progressive or arithmetic-coded, using the
 * libjpeg API. usage: gen_restart_jpeg OUT.jpg W H [MODE]
 * MODE: progressive, arith, ycck, or a luma sampling factor pair for chroma
 * subsamplings PIL cannot write: s411 (4x1), s440 (1x2), s410 (4x2), s311 (3x1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

int main(int argc, char **argv) {
    if (argc < 4)
        return 2;
    int w = atoi(argv[2]), h = atoi(argv[3]);
    const char *mode = argc > 4 ? argv[4] : "";
    int ycck = strcmp(mode, "ycck") == 0;
    int nc = ycck ? 4 : 3;
    FILE *f = fopen(argv[1], "wb");
    unsigned char *row = malloc((size_t)w * nc);
    if (!f || !row || w <= 0 || h <= 0)
        return 1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = nc;
    c.in_color_space = ycck ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&c);
    if (ycck)
        jpeg_set_colorspace(&c, JCS_YCCK);
    jpeg_set_quality(&c, 88, TRUE);
    c.restart_in_rows = 1; /* a restart marker after every MCU row */
    if (strcmp(mode, "progressive") == 0)
        jpeg_simple_progression(&c);
    if (strcmp(mode, "arith") == 0)
        c.arith_code = TRUE;
    static const struct {
        const char *name;
        int h, v;
    } samp[] = {{"s411", 4, 1}, {"s440", 1, 2}, {"s410", 4, 2}, {"s311", 3, 1}};
    for (size_t i = 0; i < sizeof(samp) / sizeof(samp[0]); i++)
        if (strcmp(mode, samp[i].name) == 0) { /* luma factors; chroma 1x1 */
            c.comp_info[0].h_samp_factor = samp[i].h;
            c.comp_info[0].v_samp_factor = samp[i].v;
            for (int k = 1; k < 3; k++)
                c.comp_info[k].h_samp_factor = c.comp_info[k].v_samp_factor = 1;
        }
    jpeg_start_compress(&c, TRUE);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++)
            for (int k = 0; k < nc; k++) {
                int v = (x * (k + 1) * 255 / w + y * (3 - k % 3) * 255 / h) / 2;
                v += ((x / 7 + y / 5) & 1) * 40 * (k == 1) + (x * y % 31);
                row[x * nc + k] = (unsigned char)(v & 255);
            }
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
    free(row);
    return 0;
}
