#!/usr/bin/env python3
"""Hostile images (issue 13, classes 1-3) cost bounded memory and time.

For every case of tests/lib/hostile_images.py: `resnetd preprocess` gives
the expected status (exit 0 / exit 1 with the expected code), within 1 s of
CPU and a bounded peak RSS. Then test_img_cost checks, with every
allocation counted, that img_probe's peak_bytes bounds what img_preprocess
allocates, on the hostile cases and on honest photos (JPEG baseline,
progressive, 4:4:4, CMYK, gray, EXIF-rotated; PNG RGBA/palette/16-bit/
interlaced; WebP lossy, alpha, lossless at many sizes and settings, where
test_img_cost also checks that the pre-parsed Huffman group count is the
one libwebp allocates tables for).

A case refused by the server's budget rule (img_probe's bound over the
256 MiB in-flight budget -> 400 image_too_complex before any decoding) is
checked through that bound (`test_img_cost --bound`), not decoded by
`resnetd preprocess`, which has no budget.

usage: test_hostile_cost.py RESNETD TEST_IMG_COST WORKDIR
"""
import io
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "..", "lib")

CPU_LIMIT = 1.0  # seconds of CPU per input (the bound)
RSS_LIMIT_MB = 256  # per `resnetd preprocess` process (before: up to 2 GB)
BUDGET = 256 << 20  # the server's default max_inflight_bytes

failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL", msg)


def run_preprocess(binary, model, path, out):
    """(exit code, stderr, CPU seconds, peak RSS MB) of one child."""
    p = subprocess.Popen([binary, "preprocess", "--model", model, path, out],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, err.strip(), ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def honest_images(work):
    """[(name, bytes)] of ordinary images that must decode (200)."""
    import numpy as np
    from PIL import Image

    sys.path.insert(0, HERE)
    sys.path.insert(0, LIB)
    import hostile_images
    from imgtest_common import photo
    out = []
    big = Image.fromarray(photo(4000, 3000, 1))

    def save(name, im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        out.append((name, buf.getvalue()))

    save("photo_4000x3000_q90.jpg", big, "JPEG", quality=90)
    save("photo_4000x3000_progressive.jpg", big, "JPEG", quality=90, progressive=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    save("photo_4000x3000_exif6.jpg", big, "JPEG", quality=85, exif=exif.tobytes())
    mid = Image.fromarray(photo(1201, 901, 2))
    save("photo_1201x901_444.jpg", mid, "JPEG", quality=95, subsampling=0)
    save("photo_1201x901_progressive_exif8.jpg", mid, "JPEG", progressive=True,
         exif=(lambda e: (e.__setitem__(0x0112, 8), e.tobytes())[1])(Image.Exif()))
    save("photo_1201x901_cmyk.jpg", mid.convert("CMYK"), "JPEG", quality=90)
    save("photo_1201x901_gray.jpg", mid.convert("L"), "JPEG", quality=90)
    save("photo_1500x1000_rgba.png", Image.fromarray(photo(1500, 1000, 3)).convert("RGBA"), "PNG")
    save("photo_800x600_palette.png", Image.fromarray(photo(800, 600, 4)).convert("P"), "PNG")
    g16 = (np.asarray(Image.fromarray(photo(640, 480, 5)).convert("L")).astype(np.uint16) * 3)
    save("photo_640x480_gray16.png", Image.fromarray(g16), "PNG")
    save("photo_1500x1000.webp", Image.fromarray(photo(1500, 1000, 6)), "WEBP", quality=80)
    save("photo_1500x1000_alpha.webp", Image.fromarray(photo(1500, 1000, 7)).convert("RGBA"),
         "WEBP", quality=80)
    save("photo_1000x800_lossless.webp", Image.fromarray(photo(1000, 800, 8)), "WEBP",
         lossless=True)
    # lossless WebP: the pre-parsed group count must match libwebp's, the
    # bound stay within the budget (tens of MB for 1-3 MP)
    rng = np.random.default_rng(13)
    save("photo_1000x1000_lossless.webp", Image.fromarray(photo(1000, 1000, 9)), "WEBP",
         lossless=True)
    save("photo_2000x1500_lossless.webp", Image.fromarray(photo(2000, 1500, 10)), "WEBP",
         lossless=True)
    small = Image.fromarray(photo(640, 480, 11))
    for m in (0, 3, 6):
        for q in (0, 50, 100):
            save(f"photo_640x480_lossless_m{m}_q{q}.webp", small, "WEBP", lossless=True,
                 method=m, quality=q)
    save("photo_800x600_lossless_alpha.webp",
         Image.fromarray(photo(800, 600, 12)).convert("RGBA"), "WEBP", lossless=True)
    pal = Image.fromarray(photo(700, 500, 13))
    for colours in (2, 4, 16, 200):
        save(f"palette{colours}_700x500_lossless.webp",
             pal.convert("P", palette=Image.ADAPTIVE, colors=colours).convert("RGB"), "WEBP",
             lossless=True)
    save("gray_900x700_lossless.webp", Image.fromarray(photo(900, 700, 14)).convert("L"),
         "WEBP", lossless=True)
    save("noise_512x512_lossless.webp",
         Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)), "WEBP",
         lossless=True)
    save("noise_300x300_rgba_lossless.webp",
         Image.fromarray(rng.integers(0, 256, (300, 300, 4), dtype=np.uint8)), "WEBP",
         lossless=True)
    save("flat_3000x3000_lossless.webp", Image.new("RGB", (3000, 3000), (10, 200, 30)), "WEBP",
         lossless=True)
    save("noise_1x5000_lossless.webp",
         Image.fromarray(rng.integers(0, 256, (5000, 1, 3), dtype=np.uint8)), "WEBP",
         lossless=True)
    save("noise_5000x1_lossless.webp",
         Image.fromarray(rng.integers(0, 256, (1, 5000, 3), dtype=np.uint8)), "WEBP",
         lossless=True)
    save("photo_1000x800_alpha_lossy_m6.webp",
         Image.fromarray(photo(1000, 800, 15)).convert("RGBA"), "WEBP", quality=90, method=6)
    out.append(("flat_interlaced16_1000.png", hostile_images.png_interlaced16(1000, 1000)))
    # unusual sampling factors (the row buffers of libjpeg's upsampler)
    for comps, tag in [([(1, 4, 1), (2, 1, 1), (3, 1, 1)], "411"),
                       ([(1, 1, 4), (2, 1, 2), (3, 1, 1)], "1x4"),
                       ([(1, 1, 1), (2, 2, 2), (3, 1, 1)], "chroma22"),
                       ([(1, 2, 1), (2, 1, 1), (3, 1, 1), (4, 2, 1)], "cmyk422"),
                       ([(1, 2, 2), (2, 1, 1), (3, 1, 1), (4, 2, 2)], "cmyk420"),
                       ([(1, 1, 1)], "gray")]:
        for prog in (False, True):
            out.append((f"flat_2048x1536_{tag}{'_prog' if prog else ''}.jpg",
                        hostile_images.jpeg_flat(2048, 1536, comps, progressive=prog,
                                                 ac_scans=2 if prog else 0)))
            out.append((f"flat_1999x1001_{tag}{'_prog' if prog else ''}.jpg",
                        hostile_images.jpeg_flat(1999, 1001, comps, progressive=prog)))
            # very wide: libjpeg's row buffers dominate (a fuzz finding)
            for w, h in [(21008, 16), (30000, 9), (9, 30000)]:
                out.append((f"flat_{w}x{h}_{tag}{'_prog' if prog else ''}.jpg",
                            hostile_images.jpeg_flat(w, h, comps, progressive=prog)))
    return out


def main():
    binary, cost_bin, work = sys.argv[1], sys.argv[2], sys.argv[3]
    hostile = os.path.join(work, "hostile")
    os.makedirs(hostile, exist_ok=True)
    model = os.path.join(work, "m")
    os.makedirs(model, exist_ok=True)
    open(os.path.join(model, "model.onnx"), "wb").close()  # preprocess never reads it
    out = os.path.join(work, "out.npy")
    # Generated in a child so that this process stays small: a forked child's
    # peak RSS starts at the parent's current RSS.
    listing = subprocess.run([sys.executable, os.path.join(LIB, "hostile_images.py"), hostile],
                             capture_output=True, text=True, check=True).stdout
    manifest = []
    for line in listing.splitlines():
        fname, size, status, code = line.split("\t")
        name, status, path = fname.rsplit(".", 1)[0], int(status), os.path.join(hostile, fname)
        manifest.append((path, code))
        if code == "image_too_complex":
            probe = subprocess.run([cost_bin, "--bound", path], capture_output=True, text=True,
                                   check=True).stdout.split()
            if probe[0] == "ok" and int(probe[1]) > BUDGET:
                print(f"{name}: {size} bytes -> bound {int(probe[1]) / 2**20:.0f} MiB > budget "
                      f"{BUDGET >> 20} MiB: the server refuses it, 400 {code}")
                continue
        t0 = time.monotonic()
        rc, err, cpu, rss = run_preprocess(binary, model, path, out)
        wall = time.monotonic() - t0
        want_rc = 0 if status == 200 else 1
        check(rc == want_rc, f"{name}: exit {rc}, want {want_rc} ({err})")
        if code != "ok":
            check(f": {code}: " in err, f"{name}: stderr {err!r} lacks {code}")
        check(cpu < CPU_LIMIT, f"{name}: {cpu:.3f} s of CPU (limit {CPU_LIMIT})")
        check(rss < RSS_LIMIT_MB, f"{name}: peak RSS {rss:.0f} MB (limit {RSS_LIMIT_MB})")
        print(f"{name}: {size} bytes -> exit {rc} {code}, cpu {cpu * 1e3:.0f} ms, "
              f"wall {wall * 1e3:.0f} ms, rss {rss:.0f} MB")
    for name, data in honest_images(work):
        path = os.path.join(work, name)
        with open(path, "wb") as f:
            f.write(data)
        manifest.append((path, "ok"))
    corpus = os.path.join(HERE, "..", "fuzz", "corpus", "image")
    for name in sorted(os.listdir(corpus)):
        manifest.append((os.path.join(corpus, name), "*"))
    mpath = os.path.join(work, "manifest.tsv")
    with open(mpath, "w") as f:
        for path, code in manifest:
            f.write(f"{path}\t{code}\n")
    p = subprocess.run([cost_bin, mpath, str(BUDGET)], capture_output=True, text=True)
    print(p.stdout, end="")
    if p.returncode == 77:
        print("test_img_cost skipped (sanitizer build): allocation bound not measured")
    else:
        check(p.returncode == 0, f"test_img_cost exit {p.returncode}: {p.stderr.strip()}")
    print("FAILED" if failures else "OK", failures)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
