"""Deterministic generators of hostile requests for tests/hardening/hostile_cost.py
(issue 13): JPEG/PNG bombs built byte by byte (no encoder library, so the bytes
are exactly the attack and never depend on a PIL version), KServe v2 bodies,
multipart bodies and raw HTTP framing.

Every function returns bytes (or a tuple documented on it). Nothing is random.
The image builders mirror the issue's reproductions:

- jpeg_hidden_sof(hidden, visible): an `FF 00 LL LL` pseudo-segment right after
  SOI. A marker walk that reads `FF 00` as a marker with a length skips LL-2
  bytes; libjpeg reads `FF 00` as fill and parses the markers inside: a
  complete progressive frame (DQT, SOF2 hidden x hidden, DHT, scans, EOI).
  After the pseudo-segment comes a small visible baseline frame claiming
  visible x visible, which is what the walk sees. libjpeg stops at the hidden
  EOI and never reads the visible frame.
- jpeg_many_scans(size, scans): a visible progressive size x size gray JPEG
  whose DC-first scan header is repeated `scans` times (scans with no data:
  libjpeg still walks every block of the frame once per scan).
- png_text_bomb(n, kind): a 1x1 PNG with n zTXt/iTXt chunks that each inflate
  to ~8 MB (libpng's default per-chunk cap is 8,000,000 bytes).
"""

import json
import struct
import zlib

# --------------------------------------------------------------------- JPEG


def _seg(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _dqt():
    return _seg(0xDB, b"\x00" + b"\x01" * 64)


def _sof(marker, w, h):
    """One gray component, 1x1 sampling, quant table 0."""
    return _seg(marker, struct.pack(">BHHB", 8, h, w, 1) + b"\x01\x11\x00")


def _dht(tc_th):
    """A table with one symbol, 0, coded '0' (1 bit): DC diff 0 / AC end-of-block.
    All-zero entropy bits then decode as flat blocks: zero bytes are valid data."""
    return _seg(0xC4, bytes([tc_th]) + b"\x01" + b"\x00" * 15 + b"\x00")


def _sos(ss, se, ahal=0):
    return _seg(0xDA, b"\x01\x01\x00" + bytes([ss, se, ahal]))


SOI, EOI = b"\xff\xd8", b"\xff\xd9"


def jpeg_baseline(w, h, data_bytes=None):
    """A valid baseline gray w x h JPEG of flat gray: every block is DC diff 0 +
    EOB (2 bits). data_bytes=None writes the full entropy data; a number writes
    that many zero bytes (libjpeg pads the rest with a warning)."""
    blocks = ((w + 7) // 8) * ((h + 7) // 8)
    n = (2 * blocks + 7) // 8 if data_bytes is None else data_bytes
    return (SOI + _dqt() + _sof(0xC0, w, h) + _dht(0x00) + _dht(0x10) + _sos(0, 63) +
            b"\x00" * n + EOI)


def _progressive_body(size, scans, data_bytes=2):
    """DQT, SOF2 size x size, DC table, `scans` DC-first scans of data_bytes each, EOI."""
    scan = _sos(0, 0) + b"\x00" * data_bytes
    return _dqt() + _sof(0xC2, size, size) + _dht(0x00) + scan * scans + EOI


def _hide(hidden):
    """`FF 00 LL LL` + hidden, LL = 2 + len(hidden), with neither length byte 0xFF
    (libjpeg skips non-FF bytes after the fill; an FF would start a marker)."""
    while True:
        n = len(hidden) + 2
        if n > 0xFFFF:
            raise ValueError(f"hidden part of {len(hidden)} bytes does not fit one segment")
        if 0xFF not in struct.pack(">H", n):
            return b"\xff\x00" + struct.pack(">H", n) + hidden
        hidden = b"\x00" + hidden  # a stray byte libjpeg discards (before a marker)


def jpeg_hidden_sof(hidden, visible, scans=1):
    """Class 1: progressive hidden x hidden frame with `scans` DC scans behind
    FF 00, then a visible baseline visible x visible frame (a few data bytes,
    then EOI). Pick visible >= ceil(hidden / 8) so TurboJPEG's 1/8 scale fits."""
    return SOI + _hide(_progressive_body(hidden, scans)) + jpeg_baseline(visible, visible, 4)[2:]


def jpeg_tables_only(with_visible=True):
    """Class 1: SOI, then behind FF 00 only tables and EOI (an abbreviated
    table-specification stream: libjpeg finds no frame), then optionally a
    small valid visible 16x16 frame for a marker walk to find."""
    hidden = _dqt() + _dht(0x00) + _dht(0x10) + EOI
    if not with_visible:
        return SOI + hidden
    return SOI + _hide(hidden) + jpeg_baseline(16, 16)[2:]


def jpeg_many_scans(size, scans):
    """Class 3: visible progressive size x size gray, DC-first scan repeated
    `scans` times; the first scan carries full data (1 bit per block)."""
    blocks = ((size + 7) // 8) ** 2
    first = _sos(0, 0) + b"\x00" * ((blocks + 7) // 8)
    rest = _sos(0, 0) * (scans - 1)
    return SOI + _dqt() + _sof(0xC2, size, size) + _dht(0x00) + first + rest + EOI


# ---------------------------------------------------------------------- PNG


def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _ihdr(w, h):
    return png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))


def png_gray(w, h, value=0):
    """A valid gray w x h PNG, every pixel `value` (compresses ~1000:1)."""
    z = zlib.compressobj(9)
    row = b"\0" + bytes([value]) * w
    parts, left = [], h
    while left:
        k = min(left, 256)
        parts.append(z.compress(row * k))
        left -= k
    parts.append(z.flush())
    return PNG_SIG + _ihdr(w, h) + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b"")


_BOMB_TEXT = 7_990_000  # under libpng's 8 MB chunk cap (resnetd sets 8 MiB): it inflates
_bomb_cache = {}


def _deflated(n, fill=b"A"):
    """n bytes of `fill`, deflated (~1000:1). Not zeros: libpng keeps a text
    chunk as a C string, so a NUL first byte would make it empty and cheap."""
    if n not in _bomb_cache:
        _bomb_cache[n] = zlib.compress(fill * n, 9)
    return _bomb_cache[n]


def png_text_bomb(n, kind=b"zTXt", inflated=_BOMB_TEXT):
    """Class 2: 1x1 gray PNG with n text chunks before IDAT, each inflating to
    `inflated` bytes of text (~7.8 KB each on the wire)."""
    z = _deflated(inflated)
    if kind == b"zTXt":
        chunk = png_chunk(b"zTXt", b"Comment\0\0" + z)
    elif kind == b"iTXt":  # keyword, compression flag 1, method 0, language, translated
        chunk = png_chunk(b"iTXt", b"Comment\0\x01\x00\0\0" + z)
    else:
        raise ValueError(kind)
    idat = png_chunk(b"IDAT", zlib.compress(b"\0\x80", 9))
    return PNG_SIG + _ihdr(1, 1) + chunk * n + idat + png_chunk(b"IEND", b"")


def icc_header(size):
    """A 128-byte ICC header libpng accepts for a gray PNG (monitor class,
    GRAY data, XYZ PCS, 'acsp', perceptual intent, D50 illuminant), tag count 0."""
    h = bytearray(132)
    struct.pack_into(">I", h, 0, size)
    struct.pack_into(">I", h, 8, 0x02100000)
    h[12:16], h[16:20], h[20:24], h[36:40] = b"mntr", b"GRAY", b"XYZ ", b"acsp"
    struct.pack_into(">iii", h, 68, 0xF6D6, 0x10000, 0xD32D)
    return bytes(h)


def png_iccp_bomb(profile_bytes=_BOMB_TEXT, copies=1):
    """Class 2: 1x1 gray PNG with an iCCP chunk whose profile has a valid
    header claiming profile_bytes and inflates to that much: libpng inflates
    it all before it checks the (empty) tag table. copies > 1 repeats it."""
    prof = icc_header(profile_bytes) + b"A" * (profile_bytes - 132)
    chunk = png_chunk(b"iCCP", b"icc\0\0" + zlib.compress(prof, 9))
    idat = png_chunk(b"IDAT", zlib.compress(b"\0\x80", 9))
    return PNG_SIG + _ihdr(1, 1) + chunk * copies + idat + png_chunk(b"IEND", b"")


# ------------------------------------------------------------ KServe v2


def v2_fp32_binary(n, outputs, model_input="input", extra=None):
    """(body, headers) of a v2 infer request: n gray 28x28 FP32 images as binary
    tensor data (deterministic values), `outputs` the "outputs" list as given
    (None: no key). extra: more top-level keys."""
    vals = struct.pack("<%df" % (n * 784), *[((i * 37) % 255) / 255.0 for i in range(n * 784)])
    req = {"inputs": [{"name": model_input, "shape": [n, 1, 28, 28], "datatype": "FP32",
                       "parameters": {"binary_data_size": len(vals)}}]}
    if outputs is not None:
        req["outputs"] = outputs
    req.update(extra or {})
    hdr = json.dumps(req, separators=(",", ":")).encode()
    return hdr + vals, {"Inference-Header-Content-Length": str(len(hdr)),
                        "Content-Type": "application/octet-stream"}


def v2_fp32_json(data_text, extra=None):
    """(body, headers): one [1,1,28,28] FP32 tensor as JSON; data_text is the
    raw JSON text of the first element (e.g. "1e39"), the other 783 are 0.5."""
    head = {"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                        "data": ["@@"]}]}
    head.update(extra or {})
    text = json.dumps(head, separators=(",", ":"), ensure_ascii=False)
    data = ",".join([data_text] + ["0.5"] * 783)
    return text.replace('"@@"', data).encode("utf-8"), {"Content-Type": "application/json"}


# ------------------------------------------------------------- multipart


def multipart(parts, boundary="hostilecostboundary"):
    """parts: [(filename bytes, data bytes)] -> (body, content type)."""
    b = boundary.encode()
    out = []
    for name, data in parts:
        out += [b"--", b, b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"", name,
                b"\"\r\nContent-Type: application/octet-stream\r\n\r\n", data, b"\r\n"]
    out += [b"--", b, b"--\r\n"]
    return b"".join(out), "multipart/form-data; boundary=" + boundary


# ---------------------------------------------------------- HTTP framing


def http_request(method, path, headers, body=b""):
    """Raw request bytes; headers is a list of raw header lines (bytes, no CRLF),
    sent as given (duplicates, odd spacing and folding included)."""
    return (method.encode() + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" +
            b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body)


SMUGGLED = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"


def framing_cases(png):
    """Class 7: [(name, raw bytes)] that must each get 400 (or 501 for an
    unknown transfer coding), or a close, and never a second response: each
    ends with a smuggled GET that must not be answered."""
    n = len(png)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (n, png)
    return [
        ("duplicate differing Content-Length",
         http_request("POST", "/v1/classify", [b"Content-Length: %d" % n, b"Content-Length: %d" %
                                               (n + len(SMUGGLED))], png + SMUGGLED)),
        ("Content-Length list '10, 20'",
         http_request("POST", "/v1/classify", [b"Content-Length: %d, %d" %
                                               (n, n + len(SMUGGLED))], png + SMUGGLED)),
        ("'Transfer-Encoding : chunked' + Content-Length",
         http_request("POST", "/v1/classify", [b"Content-Length: %d" % n,
                                               b"Transfer-Encoding : chunked"], png + SMUGGLED)),
        ("'Content-Length : N' (space before colon)",
         http_request("POST", "/v1/classify", [b"Content-Length : %d" % n], png + SMUGGLED)),
        ("Transfer-Encoding: gzip",
         http_request("POST", "/v1/classify", [b"Transfer-Encoding: gzip"], png + SMUGGLED)),
        ("Transfer-Encoding: chunked, gzip",
         http_request("POST", "/v1/classify", [b"Transfer-Encoding: chunked, gzip"],
                      chunked + SMUGGLED)),
        ("Transfer-Encoding: gzip, chunked",
         http_request("POST", "/v1/classify", [b"Transfer-Encoding: gzip, chunked"],
                      chunked + SMUGGLED)),
        ("obs-fold header continuation",
         http_request("POST", "/v1/classify", [b"Content-Length: %d" % n, b"X-Folded: a",
                                               b" b"], png + SMUGGLED)),
        ("bare-LF chunk framing",
         http_request("POST", "/v1/classify", [b"Transfer-Encoding: chunked"],
                      b"%x\n%s\n0\n\n" % (n, png) + SMUGGLED)),
    ]
