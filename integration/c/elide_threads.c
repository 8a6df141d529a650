/* Eight threads moving IO data through chains of copies at the same time,
 * for the copy-elision engine: every copy below is large enough to be
 * elided, so under zio the copies' pages stay unmapped, are filled by the
 * fault handler when touched, are rebuilt when their original changes, and
 * are written out from the originals.
 *
 * usage: elide_threads SCRATCH_DIR ITERATIONS
 *
 * Each thread, ITERATIONS times:
 *   - reads a 256 KiB .. 1 MiB chunk of its own input file (at an odd offset
 *     of one of its two input buffers, in turn, from a pseudo-random file
 *     position) with read();
 *   - copies it in a chain in -> a -> b -> c of private buffers (memcpy,
 *     memmove, mempcpy; odd destination offsets);
 *   - touches copies: reads bytes of a, writes bytes of b before or after
 *     the copy b -> c;
 *   - modifies its input buffer (the original of the chain);
 *   - writes c to its own output file (write, writev or pwrite);
 *   - every fourth iteration copies a piece of the SHARED original (read once
 *     by main before the threads start, never written) into a private buffer
 *     and writes that out;
 *   - every eighth iteration, holding a mutex, copies its input into the
 *     SHARED destination buffer and writes that out.
 * Every 25 iterations a thread folds its output file into a running FNV-1a
 * 64 checksum (reads it back, truncates it). main prints, in thread order,
 * each thread's output checksum and the sum of the bytes it touched, then
 * checks of the shared buffers. Nothing printed depends on scheduling.
 * Built with -fno-builtin so that copies stay real calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define NTHREADS 8
#define CHUNK_MIN (256 << 10)
#define CHUNK_SPAN (768 << 10)          /* chunks are CHUNK_MIN .. 1 MiB (+ < 4 KiB) */
#define BUF_SIZE ((1 << 20) + (16 << 10)) /* room for a chunk at an odd offset */
#define IN_FILE (4 << 20)               /* each thread's input file */
#define SHARED_SRC (2 << 20)            /* the shared original */
#define SHARED_DST (1 << 20)            /* the shared destination */
#define FOLD_EVERY 25

typedef uint64_t u64u __attribute__((aligned(1), may_alias));

static void die(const char *what) {
    fprintf(stderr, "elide_threads: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* FNV-1a 64 over 8-byte little-endian words, then the tail bytes. */
static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) h = (h ^ *(const u64u *)(p + i)) * 1099511628211ULL;
    for (; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}
#define FNV0 1469598103934665603ULL

static uint64_t next(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static const char *dir;
static long iterations;
static unsigned char *shared_src;
static unsigned char *shared_dst;
static pthread_mutex_t dst_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t dst_len;    /* what the last writer put into shared_dst */
static uint64_t dst_sum;
static pthread_barrier_t start;

struct job {
    int id;
    uint64_t out_sum;
    uint64_t touch_sum;
};

static void write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        p += r;
        n -= (size_t)r;
    }
}

/* Writes n bytes at p, with the call chosen by how (0 write, 1 writev in
 * two pieces, 2 pwrite at the current offset). */
static void output(int fd, const unsigned char *p, size_t n, int how) {
    if (how == 1) {
        size_t h = n / 3;
        struct iovec iov[2] = {{(void *)p, h}, {(void *)(p + h), n - h}};
        ssize_t r = writev(fd, iov, 2);
        if (r < 0) die("writev");
        if ((size_t)r < n) write_all(fd, p + r, n - (size_t)r);
    } else if (how == 2) {
        off_t at = lseek(fd, 0, SEEK_CUR);
        if (at < 0) die("lseek");
        size_t done = 0;
        while (done < n) {
            ssize_t r = pwrite(fd, p + done, n - done, at + (off_t)done);
            if (r < 0) die("pwrite");
            done += (size_t)r;
        }
        if (lseek(fd, at + (off_t)n, SEEK_SET) < 0) die("lseek");
    } else {
        write_all(fd, p, n);
    }
}

/* Reads exactly n bytes from pos of fd into p (read() after lseek). */
static void read_at(int fd, unsigned char *p, size_t n, off_t pos) {
    if (lseek(fd, pos, SEEK_SET) < 0) die("lseek");
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0) die("read");
        if (r == 0) {
            fprintf(stderr, "elide_threads: short input file\n");
            exit(1);
        }
        got += (size_t)r;
    }
}

/* Folds the output file into *h and empties it. */
static void fold(int fd, unsigned char *buf, uint64_t *h) {
    off_t end = lseek(fd, 0, SEEK_CUR);
    if (end < 0 || lseek(fd, 0, SEEK_SET) < 0) die("lseek");
    off_t done = 0;
    while (done < end) {
        ssize_t r = read(fd, buf, BUF_SIZE);
        if (r <= 0) die("read back");
        *h = fnv(*h, buf, (size_t)r);
        done += r;
    }
    if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0) die("ftruncate");
}

static void *work(void *arg) {
    struct job *j = arg;
    char path[4096];
    snprintf(path, sizeof path, "%s/in.%d", dir, j->id);
    int in_fd = open(path, O_RDONLY);
    if (in_fd < 0) die("open input");
    snprintf(path, sizeof path, "%s/out.%d", dir, j->id);
    int out_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (out_fd < 0) die("open output");

    unsigned char *ins[2] = {malloc(BUF_SIZE), malloc(BUF_SIZE)};
    unsigned char *a = malloc(BUF_SIZE), *b = malloc(BUF_SIZE), *c = malloc(BUF_SIZE);
    unsigned char *s = malloc(BUF_SIZE), *rb = malloc(BUF_SIZE);
    if (!ins[0] || !ins[1] || !a || !b || !c || !s || !rb) die("malloc");
    uint64_t x = 0x9E3779B97F4A7C15ULL * (uint64_t)(j->id + 1);
    uint64_t h = FNV0, touch = 0;

    pthread_barrier_wait(&start);
    for (long i = 0; i < iterations; i++) {
        /* Two input buffers in turn: the copies of the previous chunk are
         * usually overwritten (dropped) before their original is read into
         * again; what is left of them is rebuilt before that read. */
        unsigned char *in = ins[i % 2];
        size_t n = CHUNK_MIN + next(&x) % (i % 4 == 0 ? CHUNK_SPAN : CHUNK_SPAN / 6) +
                   next(&x) % 4096;
        size_t off = next(&x) % 64;
        off_t pos = (off_t)(next(&x) % (IN_FILE - n));
        read_at(in_fd, in + off, n, pos);

        /* The chain in -> a -> b -> c, with odd destination offsets. */
        size_t oa = next(&x) % 4096, ob = next(&x) % 4096;
        memcpy(a + oa, in + off, n);
        if (i % 3 == 0)
            memmove(b + ob, a + oa, n);
        else
            memcpy(b + ob, a + oa, n);
        int b_first = next(&x) % 4 == 0;
        size_t bp = next(&x) % n;
        if (b_first) b[ob + bp] ^= 0x5a; /* c sees the change */
        if (i % 2 == 0) {
            if (mempcpy(c, b + ob, n) != c + n) {
                fprintf(stderr, "elide_threads: mempcpy returned a wrong pointer\n");
                exit(1);
            }
        } else {
            memcpy(c, b + ob, n);
        }
        if (!b_first) b[ob + bp] ^= 0xa5; /* c does not */

        /* Touch a few bytes of the copies. */
        if (i % 3 == 0)
            for (int k = 0; k < 4; k++) touch += a[oa + next(&x) % n];
        if (i % 10 == 5) touch += b[ob + bp] + c[next(&x) % n];

        /* Change the original: the copies must keep the old bytes. */
        for (int k = 0; k < 3; k++) in[off + next(&x) % n] += 1 + k;

        output(out_fd, c, n, (int)(i % 3));

        if (i % 4 == 1) {
            size_t m = CHUNK_MIN / 2 + next(&x) % CHUNK_MIN;
            size_t so = next(&x) % (SHARED_SRC - m);
            size_t os = next(&x) % 64;
            memcpy(s + os, shared_src + so, m);
            if (i % 12 == 1) touch += s[os + next(&x) % m];
            output(out_fd, s + os, m, (int)((i / 4) % 3));
        }

        if (i % 8 == 3) {
            size_t m = n < SHARED_DST ? n : SHARED_DST;
            pthread_mutex_lock(&dst_lock);
            memcpy(shared_dst, in + off, m);
            write_all(out_fd, shared_dst, m);
            touch += shared_dst[m / 2];
            dst_len = m;
            dst_sum = fnv(FNV0, in + off, m);
            pthread_mutex_unlock(&dst_lock);
            in[off + m / 3] ^= 0xff; /* the shared copy keeps the old byte */
        }

        if (i % FOLD_EVERY == FOLD_EVERY - 1) fold(out_fd, rb, &h);
    }
    fold(out_fd, rb, &h);
    close(out_fd);
    close(in_fd);
    unlink(path);
    free(ins[0]);
    free(ins[1]);
    free(a);
    free(b);
    free(c);
    free(s);
    free(rb);
    j->out_sum = h;
    j->touch_sum = touch;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: elide_threads DIR ITERATIONS\n");
        return 2;
    }
    dir = argv[1];
    iterations = atol(argv[2]);
    char path[4096];

    /* The input files, from a pattern (written, never read back yet). */
    unsigned char *gen = malloc(IN_FILE);
    if (!gen) die("malloc");
    for (int t = 0; t <= NTHREADS; t++) {
        uint64_t x = 0xD1B54A32D192ED03ULL * (uint64_t)(t + 7);
        for (size_t i = 0; i < IN_FILE; i++) gen[i] = (unsigned char)(next(&x) >> 24);
        if (t < NTHREADS)
            snprintf(path, sizeof path, "%s/in.%d", dir, t);
        else
            snprintf(path, sizeof path, "%s/shared", dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("create input");
        write_all(fd, gen, t < NTHREADS ? IN_FILE : SHARED_SRC);
        close(fd);
    }
    free(gen);

    /* The shared original: one read() before the threads start. */
    shared_src = malloc(SHARED_SRC);
    shared_dst = malloc(SHARED_DST);
    if (!shared_src || !shared_dst) die("malloc");
    snprintf(path, sizeof path, "%s/shared", dir);
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("open shared");
    read_at(fd, shared_src, SHARED_SRC, 0);
    close(fd);
    uint64_t src_before = fnv(FNV0, shared_src, SHARED_SRC);

    pthread_barrier_init(&start, NULL, NTHREADS);
    pthread_t t[NTHREADS];
    struct job jobs[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        jobs[i].id = i;
        if (pthread_create(&t[i], NULL, work, &jobs[i])) die("pthread_create");
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < NTHREADS; i++)
        printf("thread %d out=%016llx touch=%llu\n", i, (unsigned long long)jobs[i].out_sum,
               (unsigned long long)jobs[i].touch_sum);

    uint64_t src_after = fnv(FNV0, shared_src, SHARED_SRC);
    printf("shared_src=%016llx %s\n", (unsigned long long)src_after,
           src_after == src_before ? "unchanged" : "CHANGED");
    uint64_t d = fnv(FNV0, shared_dst, dst_len);
    printf("shared_dst=%s\n", d == dst_sum ? "ok" : "WRONG");
    free(shared_src);
    free(shared_dst);
    return 0;
}
