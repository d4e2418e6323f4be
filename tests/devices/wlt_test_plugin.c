/*
 * A stand-in WLT photo decoder for the tests of the ctypes plug-in path.
 *
 * It does NOT decode WLT (only vendor libraries can). It checks the arguments the driver
 * passes and writes a 2x2 24-bit BMP whose colour comes from the input, so a test can tell
 * that the bytes went through the ABI and the image came back:
 *   - blue  = wlt[0], green = wlt[1], red = low byte of wlt_len;
 *   - returns 2 if wlt_len is not 1024, 3 if wlt[0] is 0xEE (a decode failure),
 *     4 if out_cap is too small; if wlt[0] is 0xEF it returns 0 with 16 bytes that are
 *     not an image (a broken shim).
 */
#include <stddef.h>
#include <string.h>

static void put16(unsigned char *p, unsigned v) { p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; }
static void put32(unsigned char *p, unsigned long v) {
    p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; p[2] = (v >> 16) & 0xff; p[3] = (v >> 24) & 0xff;
}

int zizhu_wlt_decode(const unsigned char *wlt, size_t wlt_len,
                     unsigned char *out, size_t out_cap, size_t *out_len) {
    enum { WIDTH = 2, HEIGHT = 2, ROW = 8, HEADER = 54, SIZE = HEADER + ROW * HEIGHT };
    if (wlt_len != 1024) return 2;
    if (wlt[0] == 0xEE) return 3;
    if (out_cap < SIZE) return 4;
    if (wlt[0] == 0xEF) {
        memset(out, 0x42, 16);
        *out_len = 16;
        return 0;
    }
    memset(out, 0, SIZE);
    out[0] = 'B'; out[1] = 'M';
    put32(out + 2, SIZE);
    put32(out + 10, HEADER);
    put32(out + 14, 40);           /* BITMAPINFOHEADER */
    put32(out + 18, WIDTH);
    put32(out + 22, HEIGHT);
    put16(out + 26, 1);            /* planes */
    put16(out + 28, 24);           /* bits per pixel */
    put32(out + 34, ROW * HEIGHT);
    for (int y = 0; y < HEIGHT; y++) {
        for (int x = 0; x < WIDTH; x++) {
            unsigned char *px = out + HEADER + y * ROW + x * 3;
            px[0] = wlt[0];
            px[1] = wlt[1];
            px[2] = (unsigned char)(wlt_len & 0xff);
        }
    }
    *out_len = SIZE;
    return 0;
}
