/*
 * peak_fma.c — the machine's fp32 FMA peak, so benchmarks can report "% of
 * peak": N threads each run independent chains of FMAs on registers only
 * (no memory traffic), 8 lanes with AVX2 or 16 with AVX-512 when the CPU
 * has it (`avx2` forces the AVX2 kernel, as ONEDNN_MAX_CPU_ISA=AVX2 does for
 * oneDNN).
 * With `int8` it measures the int8 multiply-accumulate peak instead, the
 * limit of oneDNN's int8 convolutions: AVX-512 VNNI `vpdpbusd` (64 u8*s8
 * MACs per instruction) when the CPU has avx512_vnni, else (or with `avx2`,
 * which as ONEDNN_MAX_CPU_ISA=AVX2 excludes AVX-VNNI) AVX2's
 * vpmaddubsw + vpmaddwd + vpaddd (32 MACs per three instructions). One MAC
 * counts as 2 ops, as one FMA lane counts as 2 FLOPs.
 * With `amx`, the AMX int8 peak (TDPBUSD tiles), which oneDNN 2.6 uses for
 * int8 instead of VNNI where the CPU has it (amx_int8 in /proc/cpuinfo).
 *   gcc -O3 -pthread bench/peak_fma.c -o peak_fma && ./peak_fma 2 [avx2] [int8|amx]
 * Prints: threads=N isa=avx512|avx2 GFLOPS=X wall=Y, or with int8:
 *   threads=N isa=avx512_vnni|avx2|amx_int8 GOPS=X wall=Y
 * X sums each thread's work over its own CPU time (the peak even on a busy
 * machine, if the N threads run on N cores); Y is over wall time.
 */
#include <immintrin.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ITERS 200000000L /* per thread; ~0.1-0.5 s */
#define CHAINS 12        /* independent accumulators: covers FMA latency x ports */

static volatile float sink;
static int use512;

__attribute__((target("avx2,fma"))) static void run_avx2(void) {
    __m256 acc[CHAINS], a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (long n = 0; n < ITERS / CHAINS; n++)
#pragma GCC unroll 12 /* the accumulators must live in registers */
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    float s = 0, o[8];
    for (int i = 0; i < CHAINS; i++) {
        _mm256_storeu_ps(o, acc[i]);
        s += o[0];
    }
    sink = s;
}

__attribute__((target("avx512f"))) static void run_avx512(void) {
    __m512 acc[CHAINS], a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < ITERS / CHAINS; n++)
#pragma GCC unroll 12 /* the accumulators must live in registers */
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    float s = 0;
    for (int i = 0; i < CHAINS; i++)
        s += _mm512_reduce_add_ps(acc[i]);
    sink = s;
}

static int int8;

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void run_vnni(void) {
    __m512i acc[CHAINS], a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-5);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_set1_epi32(i);
    for (long n = 0; n < ITERS / CHAINS; n++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
    int s = 0;
    for (int i = 0; i < CHAINS; i++)
        s += _mm512_reduce_add_epi32(acc[i]);
    sink = (float)s;
}

/* oneDNN's AVX2 int8 inner step: u8 x s8 pairs to s16, pairs of s16 to s32
 * (by a vector of ones), accumulate. */
__attribute__((target("avx2"))) static void run_avx2_int8(void) {
    __m256i acc[CHAINS], b = _mm256_set1_epi8(-5), one = _mm256_set1_epi16(1);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm256_set1_epi32(i);
    for (long n = 0; n < ITERS / CHAINS; n++)
#pragma GCC unroll 12 /* the accumulator's bytes feed the next multiply: nothing hoists */
        for (int i = 0; i < CHAINS; i++)
            acc[i] =
                _mm256_add_epi32(acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(acc[i], b), one));
    int o[8], s = 0;
    for (int i = 0; i < CHAINS; i++) {
        _mm256_storeu_si256((__m256i *)o, acc[i]);
        s += o[0];
    }
    sink = (float)s;
}

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* Each worker's own CPU time: on a machine shared with other busy processes
 * the per-thread rate (work / CPU time) is still the core's peak, while the
 * wall-clock rate is not. */
/* AMX int8 (what oneDNN 2.6 runs int8 convs on where the CPU has it):
 * TDPBUSD on 16x64 u8 by 64x16 s8 tiles, 16384 MACs per instruction, four
 * independent accumulator tiles. The kernel must first ask for the tile
 * state (arch_prctl ARCH_REQ_XCOMP_PERM). */
static int amx;
struct amx_cfg {
    unsigned char palette, start_row, reserved[14];
    unsigned short colsb[16];
    unsigned char rows[16];
};

static int amx_permit(void) {
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
}

#define AMX_ITERS (ITERS / 64) /* one TDPBUSD does 256x a vpdpbusd's MACs */
__attribute__((target("amx-tile,amx-int8"))) static void run_amx(void) {
    static const unsigned char a[16 * 64] __attribute__((aligned(64))) = {1};
    static const signed char b[16 * 64] __attribute__((aligned(64))) = {1};
    struct amx_cfg cfg = {.palette = 1};
    for (int i = 0; i < 8; i++) {
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a, 64);
    _tile_loadd(6, b, 64);
    _tile_loadd(7, b, 64);
    for (long n = 0; n < AMX_ITERS / 4; n++) {
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    int out[16 * 16] __attribute__((aligned(64)));
    _tile_stored(0, out, 64);
    _tile_release();
    sink = (float)out[0];
}

static void *worker(void *arg) {
    double c0 = cpu_now();
    if (amx)
        run_amx();
    else if (int8 && use512)
        run_vnni();
    else if (int8)
        run_avx2_int8();
    else if (use512)
        run_avx512();
    else
        run_avx2();
    *(double *)arg = cpu_now() - c0;
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1 || threads > 1024) {
        fprintf(stderr, "usage: peak_fma THREADS [avx2] [int8|amx]\n");
        return 2;
    }
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        fprintf(stderr, "peak_fma: this CPU has no AVX2+FMA\n");
        return 1;
    }
    int force_avx2 = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "avx2") == 0)
            force_avx2 = 1;
        else if (strcmp(argv[i], "int8") == 0)
            int8 = 1;
        else if (strcmp(argv[i], "amx") == 0)
            int8 = amx = 1;
        else {
            fprintf(stderr, "usage: peak_fma THREADS [avx2] [int8|amx]\n");
            return 2;
        }
    }
    use512 = __builtin_cpu_supports("avx512f") && !force_avx2;
    if (int8)
        use512 =
            use512 && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
    if (amx && (force_avx2 || !__builtin_cpu_supports("amx-int8") || !amx_permit())) {
        fprintf(stderr, "peak_fma: no AMX int8 here (or the kernel refuses the tile state)\n");
        return 1;
    }
    pthread_t *t = calloc((size_t)threads, sizeof(*t));
    double *cpu = calloc((size_t)threads, sizeof(*cpu));
    if (!t || !cpu)
        return 1;
    double t0 = now();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, &cpu[i]);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double dt = now() - t0;
    double lanes = int8 ? (use512 ? 64 : 32) : (use512 ? 16 : 8); /* MACs per chain step */
    double per_thread = 2.0 * lanes * (double)(ITERS / CHAINS * CHAINS), rate = 0;
    if (amx)
        per_thread = 2.0 * 16 * 16 * 64 * (double)(AMX_ITERS / 4 * 4);
    for (int i = 0; i < threads; i++)
        rate += cpu[i] > 0 ? per_thread / cpu[i] : 0;
    /* GFLOPS/GOPS: the sum of per-thread rates over CPU time (the machine's
     * peak even when it is busy); wall: what the threads got in wall time */
    printf("threads=%d isa=%s %s=%.1f wall=%.1f\n", threads,
           amx    ? "amx_int8"
           : int8 ? (use512 ? "avx512_vnni" : "avx2")
                  : (use512 ? "avx512" : "avx2"),
           int8 ? "GOPS" : "GFLOPS", rate / 1e9, per_thread * threads / dt / 1e9);
    free(t);
    free(cpu);
    return 0;
}
