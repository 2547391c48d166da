#!/usr/bin/env python3
"""Deterministic generators for hostile images (issue 13, classes 1-3).

Every function returns the bytes of one image built by hand (no randomness,
no external files), so the same inputs can be replayed by the image unit
tests, the fuzz regressions and the server-level battery.

JPEGs are written directly from markers: one quantisation table of ones and
Huffman tables with a single one-bit code, so that an all-zero entropy-coded
segment decodes as flat gray blocks (1 bit per block for a DC scan, 2 for a
baseline block, 15 bits per 16384 blocks for an AC scan made of EOB runs).
That keeps a 6320x6320 progressive image around 100 KB and lets the cost
attacks be expressed exactly:

  class 1: a frame hidden from a marker walk behind "FF 00" (libjpeg treats
           FF 00 as fill and parses what follows), hidden scans, tables-only
           streams and streams without any frame;
  class 2: PNG ancillary chunks that inflate to gigabytes (zTXt, iTXt,
           iCCP) and an IDAT stream far longer than the image needs;
  class 3: scans repeated within the old 1000-scan cap (DC scan headers,
           AC scans of EOB runs: each costs ~10-80 bytes and visits every
           block of the image).

cases() lists (name, bytes, expected HTTP status, expected error code);
code "ok" means a 200 with a normal result. Run as a script to write every
case into a directory: hostile_images.py OUTDIR (prints name, size, status,
code per line); hostile_images.py --regressions tests/fuzz/regressions/image
rewrites the fuzz regression inputs (fuzz_regressions()).

Expected answers that come from the server's budget rule (img_probe's
bound over the whole in-flight budget, 256 MiB by default, is refused with
400 image_too_complex before decoding) rather than from the decoder are
noted as such in cases(); known_gaps() lists inputs whose bound is only a
worst case (none left).
"""
import functools
import io
import os
import struct
import sys
import zlib

# ---------------------------------------------------------------- JPEG ----


def _seg(marker, payload):
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


SOI = b"\xff\xd8"
EOI = b"\xff\xd9"


def _dqt():
    return _seg(0xDB, b"\x00" + b"\x01" * 64)


def _sof(marker, w, h, comps):
    """comps: list of (id, h_samp, v_samp)."""
    p = bytes([8]) + struct.pack(">HH", h, w) + bytes([len(comps)])
    for cid, hs, vs in comps:
        p += bytes([cid, hs << 4 | vs, 0])
    return _seg(marker, p)


def _dht(cls, symbol):
    """A table with a single one-bit code ("0") for symbol."""
    return _seg(0xC4, bytes([cls << 4]) + bytes([1] + [0] * 15) + bytes([symbol]))


def _sos(comp_ids, ss, se, ah=0, al=0):
    p = bytes([len(comp_ids)])
    for cid in comp_ids:
        p += bytes([cid, 0x00])  # DC table 0, AC table 0
    return _seg(0xDA, p + bytes([ss, se, ah << 4 | al]))


GRAY = [(1, 1, 1)]
YCC420 = [(1, 2, 2), (2, 1, 1), (3, 1, 1)]


def _blocks(w, h, comps):
    """(blocks of each component, MCUs of an interleaved scan, blocks per MCU)."""
    hmax = max(c[1] for c in comps)
    vmax = max(c[2] for c in comps)
    per = []
    for _, hs, vs in comps:
        cw = -(-w * hs // hmax)
        chh = -(-h * vs // vmax)
        per.append((-(-cw // 8)) * (-(-chh // 8)))
    if len(comps) == 1:
        return per, per[0], 1
    mcus = (-(-w // (8 * hmax))) * (-(-h // (8 * vmax)))
    return per, mcus, sum(c[1] * c[2] for c in comps)


def _zeros_for_bits(bits):
    # Zero bits decode as code "0"; one spare byte so libjpeg never runs dry.
    return b"\x00" * (bits // 8 + 2)


def jpeg_flat(w, h, comps=GRAY, progressive=False, dc_repeats=1, ac_scans=0,
              dc_data_repeats=0):
    """A flat gray JPEG built from markers.

    progressive: one DC-first scan, then dc_repeats-1 more DC scan *headers*
    without data (libjpeg zero-fills each and still visits every block), then
    ac_scans AC scans of the first component made of EOB runs (15 bits per
    16384 blocks). dc_data_repeats adds full DC scans with their data."""
    per, mcus, bpm = _blocks(w, h, comps)
    ids = [c[0] for c in comps]
    out = SOI + _dqt()
    if not progressive:
        out += _sof(0xC0, w, h, comps) + _dht(0, 0x00) + _dht(1, 0x00)
        out += _sos(ids, 0, 63) + _zeros_for_bits(2 * mcus * bpm)
        return out + EOI
    out += _sof(0xC2, w, h, comps) + _dht(0, 0x00) + _dht(1, 0xE0)
    dc_data = _zeros_for_bits(mcus * bpm)
    out += _sos(ids, 0, 0) + dc_data
    for _ in range(dc_data_repeats):
        out += _sos(ids, 0, 0) + dc_data
    out += _sos(ids, 0, 0) * (dc_repeats - 1)
    ac_data = _zeros_for_bits(15 * (-(-per[0] // 16384)))
    out += (_sos([ids[0]], 1, 63) + ac_data) * ac_scans
    return out + EOI


def _ff00_segment(region):
    """FF 00 + a 16-bit "length" + region: a marker walk that reads FF 00 as
    a marker with a length skips region; libjpeg discards FF 00 as fill, skips
    the length bytes and parses the markers inside region."""
    pad = b""
    while True:
        n = len(pad) + len(region) + 2
        assert n <= 0xFFFF, "region too long for one FF 00 segment"
        lb = struct.pack(">H", n)
        if 0xFF not in lb:
            return b"\xff\x00" + lb + pad + region
        pad += b"\x00"  # non-FF bytes before a marker are skipped by libjpeg


def jpeg_hidden_frame(hidden_w, hidden_h, visible_w, visible_h, hidden_scans=1,
                      tables_only=False):
    """A visible gray baseline frame visible_w x visible_h for a marker walk,
    and a progressive gray frame hidden_w x hidden_h (with hidden_scans DC
    scans, the first with 16 bytes of data) that is what libjpeg decodes.
    The hidden part ends with an APP15 header whose payload is the visible
    frame, so libjpeg never sees the visible SOF. tables_only: the hidden
    part is tables + EOI (libjpeg sees a tables-only stream)."""
    visible = _sof(0xC0, visible_w, visible_h, GRAY) + _dht(0, 0) + _dht(1, 0)
    per, _, _ = _blocks(visible_w, visible_h, GRAY)
    visible += _sos([1], 0, 63) + _zeros_for_bits(2 * per[0])
    assert len(visible) + 2 <= 0xFFFF
    if tables_only:
        hidden = _dqt() + _dht(0, 0) + EOI
        return SOI + _dqt() + _ff00_segment(hidden) + visible + EOI
    hidden = _dqt() + _sof(0xC2, hidden_w, hidden_h, GRAY) + _dht(0, 0)
    hidden += _sos([1], 0, 0) + b"\x00" * 16
    hidden += _sos([1], 0, 0) * (hidden_scans - 1)
    hidden += b"\xff\xef" + struct.pack(">H", len(visible) + 2)
    return SOI + _dqt() + _ff00_segment(hidden) + visible + EOI


def jpeg_tables_only():
    """SOI, tables, EOI: no frame at all."""
    return SOI + _dqt() + _dht(0, 0) + EOI


def jpeg_ff00_no_frame():
    """FF D8 FF 00 then filler and no EOI: nothing for libjpeg to find."""
    return SOI + b"\xff\x00" + b"\x00\x10" + b"\x11" * 64


# ----------------------------------------------------------------- PNG ----


def _png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _png_ihdr(w, h, depth=8, ctype=2, interlace=0):
    return _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))


@functools.lru_cache(maxsize=None)
def _deflated_zeros(n):
    return zlib.compress(b"\x00" * n, 9)


def _png_1x1_idat():
    return _png_chunk(b"IDAT", zlib.compress(b"\x00\x80\x40\x20", 9))


def png_text_bomb(chunks, inflated=8 << 20, kind="zTXt"):
    """1x1 RGB PNG with `chunks` compressed text chunks, each inflating to
    `inflated` bytes of zeros (zTXt, or iTXt with the compression flag)."""
    z = _deflated_zeros(inflated)
    if kind == "zTXt":
        body = _png_chunk(b"zTXt", b"Comment\x00\x00" + z)
    else:
        body = _png_chunk(b"iTXt", b"Comment\x00\x01\x00\x00\x00" + z)
    return PNG_SIG + _png_ihdr(1, 1) + body * chunks + _png_1x1_idat() + _png_chunk(b"IEND", b"")


def png_iccp_bomb(declared=64 << 20):
    """1x1 RGB PNG whose iCCP profile header declares `declared` bytes (a
    valid-looking 'acsp' RGB display profile, no tags) followed by zeros:
    a decoder that honours iCCP inflates all of it."""
    hdr = bytearray(132)
    struct.pack_into(">I", hdr, 0, declared)
    hdr[12:16] = b"mntr"
    hdr[16:20] = b"RGB "
    hdr[20:24] = b"XYZ "
    hdr[36:40] = b"acsp"
    struct.pack_into(">I", hdr, 8, 0x02100000)  # version 2.1
    struct.pack_into(">iii", hdr, 68, 63190, 65536, 54061)  # D50 illuminant
    profile = bytes(hdr) + b"\x00" * (declared - len(hdr))
    z = zlib.compress(profile, 9)
    return (PNG_SIG + _png_ihdr(1, 1) + _png_chunk(b"iCCP", b"icc\x00\x00" + z)
            + _png_1x1_idat() + _png_chunk(b"IEND", b""))


@functools.lru_cache(maxsize=None)
def _zlib_zeros_stream(prefix, total):
    """A zlib stream of prefix + zeros up to `total` bytes, built from one
    deflated 16 MiB block of zeros repeated (each ends with a full flush, so
    the copies are identical); cheap to build for gigabytes."""
    step = 16 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix + b"\x00" * (step - len(prefix))) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(b"\x00" * step) + c.flush(zlib.Z_FULL_FLUSH)
    n = max(1, total // step)
    tail = c.flush(zlib.Z_FINISH)
    adler = zlib.adler32(prefix + b"\x00" * (step - len(prefix)))
    # adler32 over the zeros: a stays a, b grows by a per byte.
    a, b = adler & 0xFFFF, adler >> 16
    b = (b + a * ((n - 1) * step)) % 65521
    return b"\x78\xda" + head + block * (n - 1) + tail + struct.pack(">I", b << 16 | a)


def png_oversize_idat(w=1, h=1, inflated=256 << 20):
    """w x h RGB PNG whose IDAT stream inflates to `inflated` bytes (rounded
    to 16 MiB), far more than the w*h*3+h the image needs (trailing zeros)."""
    raw = (b"\x00" + b"\x80" * (3 * w)) * h
    return (PNG_SIG + _png_ihdr(w, h) + _png_chunk(b"IDAT", _zlib_zeros_stream(raw, inflated))
            + _png_chunk(b"IEND", b""))


def png_many_idat(chunks=200000):
    """1x1 PNG whose one-row zlib stream is split over many empty IDATs."""
    z = zlib.compress(b"\x00\x80\x40\x20", 9)
    return (PNG_SIG + _png_ihdr(1, 1) + _png_chunk(b"IDAT", b"") * chunks
            + _png_chunk(b"IDAT", z) + _png_chunk(b"IEND", b""))


def _adam7_raw16(w, h):
    """Adam7: 7 passes, each a sub-image; flat content so any row is the same."""
    raw = b""
    for xs, ys, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                           (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
        pw = max(0, (w - xs + dx - 1) // dx)
        ph = max(0, (h - ys + dy - 1) // dy)
        if pw and ph:
            raw += (b"\x00" + b"\x12\x34" * 3 * pw) * ph
    return raw


def png_interlaced16(w=1000, h=1000):
    """An honest 16-bit interlaced RGB PNG (flat): must decode normally."""
    return (PNG_SIG + _png_ihdr(w, h, 16, 2, 1)
            + _png_chunk(b"IDAT", zlib.compress(_adam7_raw16(w, h), 9)) + _png_chunk(b"IEND", b""))


def png_oversize_idat_interlaced(w=5, h=3, inflated=1 << 30):
    """16-bit interlaced RGB w x h whose IDAT continues with zeros after the
    last pass up to `inflated` bytes."""
    return (PNG_SIG + _png_ihdr(w, h, 16, 2, 1)
            + _png_chunk(b"IDAT", _zlib_zeros_stream(_adam7_raw16(w, h), inflated))
            + _png_chunk(b"IEND", b""))


# ---------------------------------------------------------------- WebP ----


def webp_header_only(w, h):
    """A VP8X (extended) WebP header declaring w x h and nothing else."""
    vp8x = bytes([0, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


class _Bits:
    """LSB-first bit writer (VP8L's order)."""

    def __init__(self):
        self.acc, self.n, self.out = 0, 0, bytearray()

    def put(self, v, nbits):
        self.acc |= (v & ((1 << nbits) - 1)) << self.n
        self.n += nbits
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def bytes(self):
        return bytes(self.out) + (bytes([self.acc]) if self.n else b"")


def _vp8l_simple1(b):
    """A Huffman code with the single symbol 0 (4 bits)."""
    b.put(1, 1)  # simple code
    b.put(0, 1)  # one symbol
    b.put(0, 1)  # 1-bit symbol
    b.put(0, 1)  # symbol 0


def _vp8l_flat8(b, nsym, max_symbol):
    """A normal code where the first nsym symbols all have length 8."""
    b.put(0, 1)  # normal code
    b.put(12 - 4, 4)  # 12 code-length code lengths (up to the one for "8")
    for i in range(12):
        b.put(1 if i == 11 else 0, 3)  # only code length 8 used (one symbol: 0 bits)
    if max_symbol:
        b.put(1, 1)
        b.put(3, 3)  # length_nbits = 2 + 2*3 = 8
        b.put(nsym - 2, 8)  # max_symbol
    else:
        b.put(0, 1)


def webp_htree_bomb(w=1024, h=1024):
    """Lossless WebP whose entropy image (4x4 tiles) names a different
    Huffman group per tile, up to 65536: each group costs 20 bits of input
    and a full set of Huffman tables in libwebp (~12 KB each)."""
    tiles_x, tiles_y = -(-w // 4), -(-h // 4)
    groups = min(65536, tiles_x * tiles_y)
    b = _Bits()
    b.put(0x2F, 8)
    b.put(w - 1, 14)
    b.put(h - 1, 14)
    b.put(0, 1)  # alpha hint
    b.put(0, 3)  # version
    b.put(0, 1)  # no transform
    b.put(0, 1)  # no colour cache
    b.put(1, 1)  # meta Huffman codes
    b.put(0, 3)  # precision 2 (4x4 tiles)
    # entropy image: no colour cache; green and red: 256 codes of 8 bits;
    # blue, alpha, distance: one symbol.
    b.put(0, 1)
    _vp8l_flat8(b, 256, True)  # green (alphabet 280: limited to 256)
    _vp8l_flat8(b, 256, False)  # red
    _vp8l_simple1(b)  # blue
    _vp8l_simple1(b)  # alpha
    _vp8l_simple1(b)  # distance
    for i in range(tiles_x * tiles_y):
        g = i % groups
        b.put(g & 0xFF, 8)  # green: any 8-bit pattern is some literal
        b.put(g >> 8, 8)  # red
    for _ in range(groups):
        for _ in range(5):
            _vp8l_simple1(b)
    data = b.bytes()
    chunk = b"VP8L" + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) & 1 else b"")
    body = b"WEBP" + chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_animated():
    from PIL import Image
    frames = [Image.new("RGB", (64, 64), (i * 40, 0, 0)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    return buf.getvalue()


def webp_lossless(w, h):
    """An honest lossless WebP (flat): decodes normally."""
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 200, 30)).save(buf, "WEBP", lossless=True)
    return buf.getvalue()


# --------------------------------------------------------------- cases ----


def cases():
    """[(name, bytes, expected HTTP status, expected error code or "ok")].

    Expectations under the default limits (max_image_pixels 40 M, the
    bundled 256/224 RGB model): hidden frames are judged by the frame
    libjpeg decodes, scans by the work they cost."""
    c = []
    # class 1: frames hidden behind FF 00, hidden scans, no frame.
    c.append(("jpeg_hidden_sof_16000", jpeg_hidden_frame(16000, 16000, 2001, 2001), 400,
              "image_too_large"))
    c.append(("jpeg_hidden_sof_32000", jpeg_hidden_frame(32000, 32000, 4001, 4001), 400,
              "image_too_large"))
    c.append(("jpeg_hidden_sof_20000x4000", jpeg_hidden_frame(20000, 4000, 2501, 501), 400,
              "image_too_large"))
    c.append(("jpeg_hidden_sof_3000_ok", jpeg_hidden_frame(3000, 3000, 376, 376), 200, "ok"))
    c.append(("jpeg_hidden_scans_1500_16000",
              jpeg_hidden_frame(16000, 16000, 2001, 2001, hidden_scans=1500), 400,
              "image_too_large"))
    c.append(("jpeg_hidden_scans_1500_6000",
              jpeg_hidden_frame(6000, 6000, 751, 751, hidden_scans=1500), 400,
              "image_too_complex"))
    c.append(("jpeg_hidden_scans_1500_1000",
              jpeg_hidden_frame(1000, 1000, 126, 126, hidden_scans=1500), 400,
              "image_too_complex"))
    c.append(("jpeg_tables_only_behind_ff00", jpeg_hidden_frame(0, 0, 64, 64, tables_only=True),
              400, "corrupt_image"))
    c.append(("jpeg_tables_only", jpeg_tables_only(), 400, "corrupt_image"))
    c.append(("jpeg_ff00_no_frame", jpeg_ff00_no_frame(), 400, "truncated_image"))
    # class 3: scans repeated within the old cap of 1000.
    c.append(("jpeg_dc_scans_990_6320_color",
              jpeg_flat(6320, 6320, YCC420, progressive=True, dc_repeats=990), 400,
              "image_too_complex"))
    c.append(("jpeg_dc_scans_990_6320_gray",
              jpeg_flat(6320, 6320, GRAY, progressive=True, dc_repeats=990), 400,
              "image_too_complex"))
    c.append(("jpeg_dc_scans_990_2000_color",
              jpeg_flat(2000, 2000, YCC420, progressive=True, dc_repeats=990), 400,
              "image_too_complex"))
    c.append(("jpeg_ac_eobrun_scans_990_6320",
              jpeg_flat(6320, 6320, GRAY, progressive=True, ac_scans=990), 400,
              "image_too_complex"))
    c.append(("jpeg_dc_scans_with_data_60_6320",
              jpeg_flat(6320, 6320, YCC420, progressive=True, dc_data_repeats=60), 400,
              "image_too_complex"))
    c.append(("jpeg_progressive_10_scans_6320_ok",
              jpeg_flat(6320, 6320, YCC420, progressive=True, dc_repeats=2, ac_scans=8), 200,
              "ok"))
    c.append(("jpeg_baseline_6320_ok", jpeg_flat(6320, 6320, YCC420), 200, "ok"))
    # class 2: PNG ancillary chunk bombs, oversize IDAT.
    c.append(("png_ztxt_bomb_100", png_text_bomb(100), 200, "ok"))
    c.append(("png_ztxt_bomb_998", png_text_bomb(998), 200, "ok"))
    c.append(("png_itxt_bomb_100", png_text_bomb(100, kind="iTXt"), 200, "ok"))
    c.append(("png_iccp_bomb_64m", png_iccp_bomb(64 << 20), 200, "ok"))
    c.append(("png_iccp_bomb_7m", png_iccp_bomb(7 << 20), 200, "ok"))
    c.append(("png_oversize_idat_1x1", png_oversize_idat(1, 1, 256 << 20), 200, "ok"))
    c.append(("png_oversize_idat_64x64", png_oversize_idat(64, 64, 64 << 20), 200, "ok"))
    c.append(("png_oversize_idat_1x1_16g", png_oversize_idat(1, 1, 16 << 30), 200, "ok"))
    c.append(("png_oversize_idat_interlaced_5x3_1g", png_oversize_idat_interlaced(5, 3, 1 << 30),
              200, "ok"))
    c.append(("png_oversize_idat_interlaced_1x1_1g", png_oversize_idat_interlaced(1, 1, 1 << 30),
              200, "ok"))
    c.append(("png_many_empty_idat", png_many_idat(200000), 200, "ok"))
    c.append(("png_interlaced16_1000", png_interlaced16(1000, 1000), 200, "ok"))
    # WebP: the header bounds the memory; animations refused.
    c.append(("webp_header_16383", webp_header_only(16383, 16383), 400, "image_too_large"))
    c.append(("webp_animated", webp_animated(), 415, "unsupported_image"))
    c.append(("webp_lossless_2000_ok", webp_lossless(2000, 2000), 200, "ok"))
    # 295 KB naming 65536 Huffman groups: libwebp 1.2.4 would allocate 819 MB
    # (~380 MB RSS). img_probe's bound is that real cost (827 MB), over the
    # 256 MiB budget: refused by the server's budget rule before decoding.
    c.append(("webp_htree_bomb_65536_groups", webp_htree_bomb(1024, 1024), 400,
              "image_too_complex"))
    return c


def fuzz_regressions():
    """[(file name, bytes)]: small variants of each attack that fit the fuzz
    target's limits (max_pixels 4 M), kept in tests/fuzz/regressions/image
    and replayed by fuzz_image_replay (and by every fuzz run as seeds)."""
    return [
        ("cost_jpeg_hidden_sof_16000.jpg", jpeg_hidden_frame(16000, 16000, 2001, 2001)),
        ("cost_jpeg_hidden_sof_32000.jpg", jpeg_hidden_frame(32000, 32000, 4001, 4001)),
        ("cost_jpeg_hidden_scans_1500_1000.jpg",
         jpeg_hidden_frame(1000, 1000, 126, 126, hidden_scans=1500)),
        ("cost_jpeg_hidden_scans_1500_2000.jpg",
         jpeg_hidden_frame(2000, 2000, 251, 251, hidden_scans=1500)),
        ("cost_jpeg_tables_only_behind_ff00.jpg",
         jpeg_hidden_frame(0, 0, 64, 64, tables_only=True)),
        ("cost_jpeg_tables_only.jpg", jpeg_tables_only()),
        ("cost_jpeg_ff00_no_frame.jpg", jpeg_ff00_no_frame()),
        ("cost_jpeg_dc_scans_990_2000_color.jpg",
         jpeg_flat(2000, 2000, YCC420, progressive=True, dc_repeats=990)),
        ("cost_jpeg_ac_eobrun_scans_990_2000.jpg",
         jpeg_flat(2000, 2000, GRAY, progressive=True, ac_scans=990)),
        ("cost_png_ztxt_bomb_10.png", png_text_bomb(10)),
        ("cost_png_iccp_bomb_7m.png", png_iccp_bomb(7 << 20)),
        ("cost_png_oversize_idat_64x64.png", png_oversize_idat(64, 64, 64 << 20)),
        ("cost_png_oversize_idat_interlaced_5x3.png",
         png_oversize_idat_interlaced(5, 3, 64 << 20)),
        ("cost_webp_htree_256_groups.webp", webp_htree_bomb(64, 64)),
    ]


def known_gaps():
    """[(name, bytes, note)] of inputs img_probe bounds only by a worst case
    far above their honest need. Empty: the lossless WebP naming 65536
    Huffman groups (webp_htree_bomb) is now bounded by its real cost (the
    VP8L pre-parse counts the groups) and is in cases()."""
    return []


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--regressions":
        for name, data in fuzz_regressions():
            with open(os.path.join(sys.argv[2], name), "wb") as f:
                f.write(data)
            print(name, len(data))
        return
    out = sys.argv[1] if len(sys.argv) > 1 else "hostile_images"
    os.makedirs(out, exist_ok=True)
    for name, data, status, code in cases():
        ext = "jpg" if name.startswith("jpeg") else name.split("_")[0]
        with open(os.path.join(out, f"{name}.{ext}"), "wb") as f:
            f.write(data)
        print(f"{name}.{ext}\t{len(data)}\t{status}\t{code}")


if __name__ == "__main__":
    main()
