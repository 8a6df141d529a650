/* Elided copies across fork(), for integration/tests/elision.rs.
 *
 * usage: elide_fork SCRATCH_DIR
 *
 * The parent reads 4 MiB of a file it writes first into four 1 MiB
 * originals (two page-aligned, two at odd heap offsets) and makes three
 * copies of each (memcpy into an aligned buffer, mempcpy of that into the
 * heap at an odd offset, memmove of that into a static buffer): twelve
 * elided copies that nobody touches. Then it forks. A child has no
 * userfaultfd state, so zio must have materialized every copy before the
 * fork. The child checksums every buffer and sends the checksums through a
 * pipe; it also reads 1 MiB more of the file itself, copies it, and writes
 * the copy into a second pipe (elision in a fresh child engine, with output
 * substitution). It ends with _exit. The parent prints the child's lines,
 * then (only after the child is done) its own checksums of the same
 * buffers, and finally reads and copies 1 MiB again and checksums that
 * copy (elision resumes in the parent after the fork).
 *
 * Every checksum is also predicted from the pattern generator; a
 * difference is named on stderr and makes the exit status 1. Built with
 * -fno-builtin so that copies stay real calls; alarm() bounds the run.
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define M (1u << 20)
#define NORIG 4
#define FILE_LEN (5u * M) /* 4 MiB for the parent, 1 MiB for the child */

static unsigned char stat_buf[NORIG * (M + 8192)];
static int failed;

#define FNV0 1469598103934665603ULL

static uint64_t fnv(const unsigned char *p, size_t n) {
    uint64_t h = FNV0;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static unsigned char pat(uint64_t x) {
    uint64_t z = (x >> 3) + 777;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (unsigned char)(z >> ((x & 7) * 8));
}

/* The checksum of file bytes [base, base+n). */
static uint64_t want(uint64_t base, size_t n) {
    uint64_t h = FNV0;
    for (size_t i = 0; i < n; i++) h = (h ^ pat(base + i)) * 1099511628211ULL;
    return h;
}

static unsigned char *orig[NORIG], *ca[NORIG], *cb[NORIG], *cc[NORIG];

/* Lines "NAME HEX" for every buffer, checked against the pattern. */
static int sums(const char *who, char *out, size_t cap) {
    size_t len = 0;
    int bad = 0;
    for (int k = 0; k < NORIG; k++) {
        const unsigned char *bufs[4] = {orig[k], ca[k], cb[k], cc[k]};
        static const char *names[4] = {"original", "copy-a", "copy-b", "copy-c"};
        uint64_t w = want((uint64_t)k * M, M);
        for (int j = 0; j < 4; j++) {
            uint64_t h = fnv(bufs[j], M);
            len += (size_t)snprintf(out + len, cap - len, "%s %s[%d] %016llx\n", who, names[j],
                                    k, (unsigned long long)h);
            if (h != w) {
                fprintf(stderr, "MISMATCH %s %s[%d]: %016llx, expected %016llx\n", who,
                        names[j], k, (unsigned long long)h, (unsigned long long)w);
                bad = 1;
            }
        }
    }
    return bad;
}

/* Reads 1 MiB at `off` into a fresh original and returns an elided copy. */
static unsigned char *read_and_copy(int fd, off_t off) {
    unsigned char *in = malloc(M), *c;
    void *p;
    if (!in || posix_memalign(&p, 4096, M)) die("malloc");
    c = p;
    if (pread(fd, in, M, off) != (ssize_t)M) die("pread");
    memcpy(c, in, M);
    free(in);
    return c;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: elide_fork SCRATCH_DIR\n");
        return 2;
    }
    alarm(20); /* never hang: SIGALRM ends the run */
    char path[512];
    snprintf(path, sizeof path, "%s/fork-input.bin", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("open");
    unsigned char *g = malloc(FILE_LEN);
    if (!g) die("malloc");
    for (size_t i = 0; i < FILE_LEN; i++) g[i] = pat(i);
    full_write(fd, g, FILE_LEN);
    free(g);
    if (lseek(fd, 0, SEEK_SET) != 0) die("lseek");

    for (int k = 0; k < NORIG; k++) {
        void *p;
        if (k < 2) {
            if (posix_memalign(&p, 4096, M)) die("posix_memalign");
            orig[k] = p;
        } else {
            unsigned char *m = malloc(M + 128);
            if (!m) die("malloc");
            orig[k] = m + 1 + 30 * k; /* never freed */
        }
        if (read(fd, orig[k], M) != (ssize_t)M) die("read");
        if (posix_memalign(&p, 4096, M)) die("posix_memalign");
        ca[k] = p;
        unsigned char *h = malloc(M + 8192);
        if (!h) die("malloc");
        cb[k] = h + 100 + k;
        cc[k] = stat_buf + (size_t)k * (M + 8192) + 4095;
        memcpy(ca[k], orig[k], M);
        if (mempcpy(cb[k], ca[k], M) != cb[k] + M) failed = 1;
        memmove(cc[k], cb[k], M);
    }

    int sp[2], dp[2];
    if (pipe(sp) || pipe(dp)) die("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        close(sp[0]);
        close(dp[0]);
        static char out[4096];
        int bad = sums("child", out, sizeof out);
        full_write(sp[1], (unsigned char *)out, strlen(out));
        close(sp[1]);
        /* Elision in the child's own engine; the copy goes out untouched. */
        unsigned char *c = read_and_copy(fd, 4 * M);
        full_write(dp[1], c, M);
        close(dp[1]);
        _exit(bad);
    }
    close(sp[1]);
    close(dp[1]);
    static char got[8192];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(sp[0], got + len, sizeof got - 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) die("read pipe");
        if (r == 0) break;
        len += (size_t)r;
    }
    got[len] = 0;
    close(sp[0]);
    unsigned char *data = malloc(M + 1);
    size_t dlen = 0;
    if (!data) die("malloc");
    while (dlen < M + 1) { /* one byte more than expected: catches excess */
        ssize_t r = read(dp[0], data + dlen, M + 1 - dlen);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) die("read pipe");
        if (r == 0) break;
        dlen += (size_t)r;
    }
    close(dp[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid) die("waitpid");
    printf("%s", got);
    printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed = 1;
    uint64_t dh = fnv(data, dlen), dw = want(4 * M, M);
    printf("child copy %zu bytes %016llx\n", dlen, (unsigned long long)dh);
    if (dlen != M || dh != dw) {
        fprintf(stderr, "MISMATCH child copy: %zu bytes %016llx, expected %zu %016llx\n", dlen,
                (unsigned long long)dh, (size_t)M, (unsigned long long)dw);
        failed = 1;
    }

    /* The parent touches the same buffers only now. */
    static char mine[4096];
    failed |= sums("parent", mine, sizeof mine);
    printf("%s", mine);

    /* Elision goes on after the fork: a new copy, touched here. */
    unsigned char *c = read_and_copy(fd, 0);
    uint64_t ph = fnv(c, M);
    printf("parent post-fork copy %016llx\n", (unsigned long long)ph);
    if (ph != want(0, M)) {
        fprintf(stderr, "MISMATCH parent post-fork copy\n");
        failed = 1;
    }
    printf("done\n");
    return failed;
}
