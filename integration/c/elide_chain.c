/* Chains of large copies of IO data, written out through every output call,
 * for the copy-elision tests (integration/tests/elision.rs).
 *
 * usage: elide_chain SCRATCH_DIR [free-early]
 *        elide_chain SCRATCH_DIR repro-pinned-free
 *        elide_chain SCRATCH_DIR repro-quarantine ROUNDS
 *
 * Input comes two ways: read() of a file this program writes first (8 MiB,
 * read back in 512 KiB chunks into one reused page-aligned buffer), and
 * recv(MSG_WAITALL) from a stream socketpair fed by a writer thread (4 MiB,
 * into a fresh malloc'd buffer per chunk; with `free-early` each is freed
 * right after its chain, while its copies live, otherwise at the very end).
 * Each 512 KiB chunk goes through a chain of copies:
 *
 *   src -> A1 (memcpy, aligned, reused every chunk)
 *       -> c2 (memmove, fresh malloc + 1/100/4095/0)   c2[12293] ^= 0x55
 *       -> c3 (mempcpy, into the static 4 MiB buffer at a rotating offset)
 *       -> r  (memcpy, malloc) then realloc(r, n + TAIL), tail memset
 *   src[100] ^= 1, src[n/2+7] ^= 0x80 after copying (copies keep old bytes)
 *
 * and the copies go out through write, pwrite, writev, pwritev, pwritev2
 * (files, read back at the end) and send, sendto, sendmsg (stream sockets)
 * and sendmmsg (a datagram socketpair, 64 KiB messages), each drained by a
 * reader thread. Every byte written is also predicted from the pattern
 * generator (no copy involved), so the program checks itself: each line of
 * stdout is a checksum of what really came out or of a buffer, and any
 * difference from the prediction is named on stderr and makes the exit
 * status 1. Only a few copies are read by the program, and only after
 * being written out; most are never touched.
 *
 * The `repro-*` modes are the smallest sequences found to break zio (see
 * repro_pinned_free and repro_quarantine below).
 *
 * Built with -fno-builtin so that copies stay real calls. alarm() bounds
 * every run (a hang ends in SIGALRM); sockets have timeouts.
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHUNK (512u << 10)
#define FILE_CHUNKS 16
#define SOCK_CHUNKS 8
#define ITERS (FILE_CHUNKS + SOCK_CHUNKS)
#define TAIL 300000u
#define DGRAM (64u << 10)
#define NMSG (CHUNK / DGRAM)
#define MOD_J (4096 * 3 + 5)
#define NOMOD ((size_t)-1)

static unsigned char big[4 << 20];

static int failed;

/* ----- checksums and the pattern ------------------------------------------ */

#define FNV0 1469598103934665603ULL
#define FNVP 1099511628211ULL

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * FNVP;
    return h;
}

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Byte x of stream s (0: the file, 1: the socket). */
static unsigned char pat(int s, uint64_t x) {
    return (unsigned char)(mix((x >> 3) + ((uint64_t)s << 40) + 12345) >> ((x & 7) * 8));
}

static void gen(unsigned char *p, int s, uint64_t base, size_t n) {
    for (size_t j = 0; j < n; j++) p[j] = pat(s, base + j);
}

/* What a copy of a chunk holds: the pattern, with one byte changed. */
struct desc {
    int stream;
    uint64_t base;
    size_t mod_j;
    unsigned char mod_x;
};

static uint64_t exp_desc(uint64_t h, const struct desc *d, size_t from, size_t len) {
    uint64_t w = 0;
    for (size_t j = from; j < from + len; j++) {
        uint64_t x = d->base + j;
        if (j == from || (x & 7) == 0) w = mix((x >> 3) + ((uint64_t)d->stream << 40) + 12345);
        unsigned char b = (unsigned char)(w >> ((x & 7) * 8));
        if (j == d->mod_j) b ^= d->mod_x;
        h = (h ^ b) * FNVP;
    }
    return h;
}

static uint64_t exp_const(uint64_t h, unsigned char b, size_t len) {
    for (size_t j = 0; j < len; j++) h = (h ^ b) * FNVP;
    return h;
}

static void check(const char *name, uint64_t got, uint64_t want) {
    printf("%-24s %016llx\n", name, (unsigned long long)got);
    if (got != want) {
        fprintf(stderr, "MISMATCH %s: got %016llx, expected %016llx\n", name,
                (unsigned long long)got, (unsigned long long)want);
        failed = 1;
    }
}

/* ----- sinks -------------------------------------------------------------- */

struct sink {
    const char *name;
    int fd;        /* where the program writes */
    int rfd;       /* sockets: the reader's end */
    int dgram;     /* sockets: datagrams of DGRAM bytes, ended by an empty one */
    char path[512];
    uint64_t exp, got;
    uint64_t exp_len, got_len;
    long bad_msgs;
    int err;
    off_t off;     /* files written at explicit offsets */
    pthread_t th;
};

enum { S_WRITE, S_PWRITE, S_WRITEV, S_PWRITEV, S_PWRITEV2, S_SEND, S_SENDTO, S_SENDMSG,
       S_SENDMMSG, NSINKS };
static struct sink sinks[NSINKS] = {
    [S_WRITE] = {.name = "write"},       [S_PWRITE] = {.name = "pwrite"},
    [S_WRITEV] = {.name = "writev"},     [S_PWRITEV] = {.name = "pwritev"},
    [S_PWRITEV2] = {.name = "pwritev2"}, [S_SEND] = {.name = "send"},
    [S_SENDTO] = {.name = "sendto"},     [S_SENDMSG] = {.name = "sendmsg"},
    [S_SENDMMSG] = {.name = "sendmmsg", .dgram = 1},
};

static void expect(int k, const struct desc *d, size_t from, size_t len) {
    sinks[k].exp = exp_desc(sinks[k].exp, d, from, len);
    sinks[k].exp_len += len;
}

static void timeouts(int fd) {
    struct timeval tv = {.tv_sec = 20};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) die("SO_RCVTIMEO");
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) die("SO_SNDTIMEO");
}

static void *reader(void *arg) {
    struct sink *s = arg;
    size_t cap = 256u << 10;
    unsigned char *buf = malloc(cap);
    if (!buf) die("malloc");
    for (;;) {
        ssize_t r = recv(s->rfd, buf, s->dgram ? DGRAM + 1 : cap, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            s->err = errno;
            break;
        }
        if (r == 0) break;
        if (s->dgram && r != DGRAM) s->bad_msgs++;
        s->got = fnv(s->got, buf, (size_t)r);
        s->got_len += (uint64_t)r;
    }
    free(buf);
    return NULL;
}

static void file_back(struct sink *s) {
    int fd = open(s->path, O_RDONLY);
    if (fd < 0) die("open output");
    size_t cap = 256u << 10;
    unsigned char *buf = malloc(cap);
    if (!buf) die("malloc");
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) die("read output");
        if (r == 0) break;
        s->got = fnv(s->got, buf, (size_t)r);
        s->got_len += (uint64_t)r;
    }
    free(buf);
    close(fd);
}

/* ----- output calls, all looping on partial results ------------------------ */

static void full_pwrite(int fd, const unsigned char *p, size_t n, off_t off) {
    while (n) {
        ssize_t r = pwrite(fd, p, n, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("pwrite");
        p += r;
        n -= (size_t)r;
        off += r;
    }
}

static void full_send(int fd, const unsigned char *p, size_t n, int use_sendto) {
    while (n) {
        ssize_t r = use_sendto ? sendto(fd, p, n, 0, NULL, 0) : send(fd, p, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die(use_sendto ? "sendto" : "send");
        p += r;
        n -= (size_t)r;
    }
}

enum vkind { V_WRITEV, V_PWRITEV, V_PWRITEV2_CUR, V_PWRITEV2_AT, V_SENDMSG };

/* Writes the whole vector (modified in place on partial results). */
static void full_vec(enum vkind k, int fd, struct iovec *iov, int cnt, off_t off) {
    while (cnt > 0) {
        ssize_t r = -1;
        struct msghdr m;
        switch (k) {
        case V_WRITEV: r = writev(fd, iov, cnt); break;
        case V_PWRITEV: r = pwritev(fd, iov, cnt, off); break;
        case V_PWRITEV2_CUR: r = pwritev2(fd, iov, cnt, -1, 0); break;
        case V_PWRITEV2_AT: r = pwritev2(fd, iov, cnt, off, 0); break;
        case V_SENDMSG:
            memset(&m, 0, sizeof m);
            m.msg_iov = iov;
            m.msg_iovlen = (size_t)cnt;
            r = sendmsg(fd, &m, 0);
            break;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("vector output");
        off += r;
        size_t left = (size_t)r;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
}

static void full_sendmmsg(int fd, unsigned char *p) {
    struct iovec iv[NMSG];
    struct mmsghdr mm[NMSG];
    memset(mm, 0, sizeof mm);
    for (unsigned k = 0; k < NMSG; k++) {
        iv[k].iov_base = p + (size_t)k * DGRAM;
        iv[k].iov_len = DGRAM;
        mm[k].msg_hdr.msg_iov = &iv[k];
        mm[k].msg_hdr.msg_iovlen = 1;
    }
    unsigned done = 0;
    while (done < NMSG) {
        int r = sendmmsg(fd, mm + done, NMSG - done, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("sendmmsg");
        for (int k = 0; k < r; k++)
            if (mm[done + k].msg_len != DGRAM) {
                fprintf(stderr, "sendmmsg: message %u sent %u bytes\n", done + k,
                        mm[done + k].msg_len);
                failed = 1;
            }
        done += (unsigned)r;
    }
}

/* ----- the socket input ----------------------------------------------------- */

static int feed_fd;

static void *feeder(void *arg) {
    (void)arg;
    unsigned char *b = malloc(CHUNK);
    if (!b) die("malloc");
    for (unsigned k = 0; k < SOCK_CHUNKS; k++) {
        gen(b, 1, (uint64_t)k * CHUNK, CHUNK);
        full_write(feed_fd, b, CHUNK);
    }
    free(b);
    return NULL;
}

/* ----- the chains ----------------------------------------------------------- */

static unsigned char *in, *A1;
static unsigned char *kept;        /* a copy kept while the input buffer is reused */
static struct desc kept_d;
static unsigned char *last_r;      /* the last chunk's realloc'd copy */
static unsigned char *last_c3;
static struct desc last_d;

/* Overlapping memmove inside an elided copy, predicted on a plain buffer. */
static void overlap_case(const unsigned char *src, const struct desc *d) {
    void *v0;
    if (posix_memalign(&v0, 4096, CHUNK)) die("posix_memalign");
    unsigned char *v = v0;
    memcpy(v, src, CHUNK);
    memmove(v + 8192 + 3, v, CHUNK - 16384);
    full_write(sinks[S_WRITE].fd, v, CHUNK);
    unsigned char *ref = malloc(CHUNK);
    if (!ref) die("malloc");
    gen(ref, d->stream, d->base, CHUNK);
    for (size_t j = CHUNK - 16384; j-- > 0;) ref[8192 + 3 + j] = ref[j];
    sinks[S_WRITE].exp = fnv(sinks[S_WRITE].exp, ref, CHUNK);
    sinks[S_WRITE].exp_len += CHUNK;
    free(ref);
    free(v);
}

static void chain(int it, unsigned char *src, int stream, uint64_t base) {
    static const size_t uoffs[4] = {1, 100, 4095, 0};
    static const size_t boffs[4] = {0, 777, 4096, 8191};
    const size_t n = CHUNK;
    const struct desc dp = {stream, base, NOMOD, 0};
    const struct desc dm = {stream, base, MOD_J, 0x55};

    if (it == 1) { /* kept until the end, untouched, while `in` is reused */
        kept = malloc(n);
        if (!kept) die("malloc");
        memcpy(kept, src, n);
        kept_d = dp;
    }
    if (it == 4) overlap_case(src, &dp);

    /* src -> A1: aligned, reused */
    memcpy(A1, src, n);
    /* A1 -> c2: unaligned, fresh heap, by memmove */
    unsigned char *u0 = malloc(n + 8192);
    if (!u0) die("malloc");
    unsigned char *c2 = u0 + uoffs[it % 4];
    memmove(c2, A1, n);
    c2[MOD_J] ^= 0x55; /* a store into an elided page of a copy */
    /* c2 -> c3: the static buffer, by mempcpy */
    unsigned char *c3 = big + (size_t)(it % 3) * (1u << 20) + boffs[it % 4];
    unsigned char *end = mempcpy(c3, c2, n);
    if (end != c3 + n) {
        fprintf(stderr, "mempcpy returned %p, expected %p\n", (void *)end, (void *)(c3 + n));
        failed = 1;
    }
    /* c3 -> r: heap, then grown by realloc */
    unsigned char *r = malloc(n);
    if (!r) die("malloc");
    memcpy(r, c3, n);
    /* The original changes after being copied: every copy keeps old bytes. */
    src[100] ^= 1;
    src[n / 2 + 7] ^= 0x80;
    r = realloc(r, n + TAIL);
    if (!r) die("realloc");
    memset(r + n, 0xA0 + it, TAIL);
    if (r[5000] != pat(stream, base + 5000)) {
        fprintf(stderr, "chunk %d: realloc'd prefix byte 5000 is %02x, expected %02x\n", it,
                r[5000], pat(stream, base + 5000));
        failed = 1;
    }

    /* Out through every output call. */
    full_write(sinks[S_WRITE].fd, A1, n);
    expect(S_WRITE, &dp, 0, n);

    full_pwrite(sinks[S_PWRITE].fd, c2, n, sinks[S_PWRITE].off);
    sinks[S_PWRITE].off += n;
    expect(S_PWRITE, &dm, 0, n);

    struct iovec v3[3] = {{c2, 100000}, {A1 + 100000, 200000}, {c3 + 300000, n - 300000}};
    full_vec(V_WRITEV, sinks[S_WRITEV].fd, v3, 3, 0);
    expect(S_WRITEV, &dm, 0, 100000);
    expect(S_WRITEV, &dp, 100000, 200000);
    expect(S_WRITEV, &dm, 300000, n - 300000);

    full_send(sinks[S_SEND].fd, c2, n, 0);
    expect(S_SEND, &dm, 0, n);

    free(u0); /* c2 is gone: its elided pages were never needed */

    struct iovec v1[1] = {{r, n + TAIL}};
    full_vec(V_PWRITEV, sinks[S_PWRITEV].fd, v1, 1, sinks[S_PWRITEV].off);
    sinks[S_PWRITEV].off += n + TAIL;
    expect(S_PWRITEV, &dm, 0, n);
    sinks[S_PWRITEV].exp = exp_const(sinks[S_PWRITEV].exp, (unsigned char)(0xA0 + it), TAIL);
    sinks[S_PWRITEV].exp_len += TAIL;

    struct iovec v2[2] = {{c3, n / 2}, {c3 + n / 2, n / 2}};
    struct sink *p2 = &sinks[S_PWRITEV2];
    if (it % 2 == 0) {
        full_vec(V_PWRITEV2_CUR, p2->fd, v2, 2, 0);
    } else {
        full_vec(V_PWRITEV2_AT, p2->fd, v2, 2, p2->off);
        if (lseek(p2->fd, p2->off + (off_t)n, SEEK_SET) < 0) die("lseek");
    }
    p2->off += n;
    expect(S_PWRITEV2, &dm, 0, n);

    full_send(sinks[S_SENDTO].fd, c3, n, 1);
    expect(S_SENDTO, &dm, 0, n);

    struct iovec vm[2] = {{A1, n / 2}, {r + n / 2, n / 2}};
    full_vec(V_SENDMSG, sinks[S_SENDMSG].fd, vm, 2, 0);
    expect(S_SENDMSG, &dp, 0, n / 2);
    expect(S_SENDMSG, &dm, n / 2, n / 2);

    full_sendmmsg(sinks[S_SENDMMSG].fd, r);
    expect(S_SENDMMSG, &dm, 0, n);

    if (it == ITERS - 1) {
        last_r = r;
        last_c3 = c3;
        last_d = dm;
    } else {
        free(r);
    }
}

/* ----- smallest sequences that broke zio ------------------------------------- */

/* Writes `len` bytes of stream 0 to DIR/name and returns it open for reading. */
static int input_file(const char *dir, const char *name, size_t len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("open input");
    unsigned char *g = malloc(len);
    if (!g) die("malloc");
    gen(g, 0, 0, len);
    full_write(fd, g, len);
    free(g);
    if (lseek(fd, 0, SEEK_SET) != 0) die("lseek");
    return fd;
}

static void full_read(int fd, unsigned char *p, size_t n) {
    ssize_t r = read(fd, p, n);
    if (r != (ssize_t)n) die("read");
}

/* Two adjacent 64 KiB heap chunks A and B, both originals. A is freed while
 * its copy X lives (quarantined). Then one copy both drops X's last pieces
 * (releasing A's quarantine, so zio frees A for real) and reads fringe
 * bytes from Y's pieces (pinning B). glibc's free(A) writes B's chunk
 * header, which lies on B's first page, write-protected because Y depends
 * on it: the write-protect fault waits for B to be unpinned, and B is
 * pinned by the very copy that is freeing A. */
static int repro_pinned_free(const char *dir) {
    const size_t K = 64u << 10;
    int fd = input_file(dir, "repro-input.bin", 2 * K);
    unsigned char *a = malloc(K), *b = malloc(K); /* adjacent heap chunks */
    void *x, *y;
    if (!a || !b || posix_memalign(&x, 4096, K) || posix_memalign(&y, 4096, K)) die("malloc");
    unsigned char *X = x, *Y = y;
    full_read(fd, a, K);    /* A: original */
    memcpy(X, a, K);        /* X: elided copy of A */
    free(a);                /* quarantined: X depends on it */
    full_read(fd, b, K);    /* B: original */
    memcpy(Y, b, K);        /* Y: elided copy of B; B write-protected */
    memcpy(X, Y + 1, K - 1); /* drops X (frees A for real) while pinning B */
    struct desc d = {0, K + 1, NOMOD, 0};
    check("X = B[1..]", fnv(FNV0, X, K - 1), exp_desc(FNV0, &d, 0, K - 1));
    d.base = K;
    check("Y = B", fnv(FNV0, Y, K), exp_desc(FNV0, &d, 0, K));
    printf("done\n");
    return failed;
}

/* ROUNDS times: a 1 MiB original is copied (elided, untouched) and freed.
 * The freed originals are quarantined for their copies until the budget
 * (ZIO_QUARANTINE, 64 MiB by default) is exceeded; then the oldest is
 * released by materializing its copy, and releasing it happens inside
 * release_src's loop over originals, which then looks the freed original
 * up again. */
static int repro_quarantine(const char *dir, int rounds) {
    const size_t M = 1u << 20;
    int fd = input_file(dir, "repro-input.bin", M);
    unsigned char **X = malloc((size_t)rounds * sizeof *X);
    if (!X) die("malloc");
    for (int r = 0; r < rounds; r++) {
        unsigned char *a = malloc(M);
        X[r] = malloc(M);
        if (!a || !X[r]) die("malloc");
        if (pread(fd, a, M, 0) != (ssize_t)M) die("pread");
        memcpy(X[r], a, M); /* elided copy of the original */
        free(a);            /* freed while its copy lives */
    }
    struct desc d = {0, 0, NOMOD, 0};
    uint64_t want = exp_desc(FNV0, &d, 0, M);
    for (int r = 0; r < rounds; r++) {
        char name[32];
        snprintf(name, sizeof name, "copy %d", r);
        check(name, fnv(FNV0, X[r], M), want);
        free(X[r]);
    }
    printf("done\n");
    return failed;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: elide_chain SCRATCH_DIR [free-early | repro-pinned-free | "
                        "repro-quarantine ROUNDS]\n");
        return 2;
    }
    const char *dir = argv[1];
    const char *mode = argc > 2 ? argv[2] : "";
    if (!strcmp(mode, "repro-pinned-free")) {
        alarm(5);
        return repro_pinned_free(dir);
    }
    if (!strcmp(mode, "repro-quarantine") && argc > 3) {
        alarm(10);
        return repro_quarantine(dir, atoi(argv[3]));
    }
    int free_early = !strcmp(mode, "free-early");
    if (*mode && !free_early) {
        fprintf(stderr, "elide_chain: unknown mode %s\n", mode);
        return 2;
    }
    alarm(15); /* never hang, whatever happens: SIGALRM ends the run */
    signal(SIGPIPE, SIG_IGN);
    char path[512];

    /* The input file: 8 MiB of stream 0, written from a plain buffer. */
    snprintf(path, sizeof path, "%s/chain-input.bin", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("open input");
    unsigned char *g = malloc(1u << 20);
    if (!g) die("malloc");
    for (uint64_t o = 0; o < (uint64_t)FILE_CHUNKS * CHUNK; o += 1u << 20) {
        gen(g, 0, o, 1u << 20);
        full_write(fd, g, 1u << 20);
    }
    free(g);
    if (lseek(fd, 0, SEEK_SET) != 0) die("lseek");

    void *p;
    if (posix_memalign(&p, 4096, CHUNK)) die("posix_memalign");
    in = p;
    if (posix_memalign(&p, 4096, CHUNK)) die("posix_memalign");
    A1 = p;

    /* Sinks: files and sockets with a reader thread each. */
    for (int k = 0; k < NSINKS; k++) {
        struct sink *s = &sinks[k];
        s->exp = s->got = FNV0;
        if (k < S_SEND) {
            snprintf(s->path, sizeof s->path, "%s/chain-out.%s", dir, s->name);
            s->fd = open(s->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (s->fd < 0) die("open output");
        } else {
            int sv[2];
            if (socketpair(AF_UNIX, s->dgram ? SOCK_DGRAM : SOCK_STREAM, 0, sv) < 0)
                die("socketpair");
            timeouts(sv[0]);
            timeouts(sv[1]);
            s->fd = sv[0];
            s->rfd = sv[1];
            if (pthread_create(&s->th, NULL, reader, s)) die("pthread_create");
        }
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) die("socketpair");
    timeouts(sv[0]);
    timeouts(sv[1]);
    feed_fd = sv[1];
    pthread_t feed_th;
    if (pthread_create(&feed_th, NULL, feeder, NULL)) die("pthread_create");

    unsigned file_k = 0, sock_k = 0;
    unsigned char *sock_in[SOCK_CHUNKS] = {0};
    for (int it = 0; it < ITERS; it++) {
        if (it % 3 != 2) {
            ssize_t r = read(fd, in, CHUNK);
            if (r != (ssize_t)CHUNK) die("read input");
            chain(it, in, 0, (uint64_t)file_k++ * CHUNK);
        } else {
            unsigned char *in2 = malloc(CHUNK);
            if (!in2) die("malloc");
            ssize_t r = recv(sv[0], in2, CHUNK, MSG_WAITALL);
            if (r != (ssize_t)CHUNK) die("recv input");
            chain(it, in2, 1, (uint64_t)sock_k * CHUNK);
            if (free_early)
                free(in2); /* an original freed while its copies live */
            else
                sock_in[sock_k] = in2;
            sock_k++;
        }
    }
    printf("chunks %u from the file, %u from the socket\n", file_k, sock_k);

    /* End of output: close files and stream sockets, an empty datagram. */
    for (int k = 0; k < NSINKS; k++) {
        struct sink *s = &sinks[k];
        if (s->dgram && send(s->fd, "", 0, 0) != 0) die("send end");
        close(s->fd);
        if (k >= S_SEND) {
            pthread_join(s->th, NULL);
            close(s->rfd);
        } else {
            file_back(s);
        }
        char name[64];
        snprintf(name, sizeof name, "out %s", s->name);
        check(name, s->got, s->exp);
        printf("%-24s %llu\n", "  bytes", (unsigned long long)s->got_len);
        if (s->got_len != s->exp_len || s->err || s->bad_msgs) {
            fprintf(stderr, "%s: %llu bytes, expected %llu (error %d, bad messages %ld)\n",
                    s->name, (unsigned long long)s->got_len, (unsigned long long)s->exp_len,
                    s->err, s->bad_msgs);
            failed = 1;
        }
    }
    pthread_join(feed_th, NULL);
    close(sv[0]);
    close(sv[1]);
    close(fd);

    /* Only now read some copies (after they went out). */
    check("copy A1 (last chunk)", fnv(FNV0, A1, CHUNK),
          exp_desc(FNV0, &(struct desc){last_d.stream, last_d.base, NOMOD, 0}, 0, CHUNK));
    check("copy c3 (last chunk)", fnv(FNV0, last_c3, CHUNK), exp_desc(FNV0, &last_d, 0, CHUNK));
    check("realloc'd r (last)", fnv(FNV0, last_r, CHUNK + TAIL),
          exp_const(exp_desc(FNV0, &last_d, 0, CHUNK), 0xA0 + ITERS - 1, TAIL));
    check("kept copy (chunk 1)", fnv(FNV0, kept, CHUNK), exp_desc(FNV0, &kept_d, 0, CHUNK));
    free(last_r);
    free(kept);
    for (unsigned k = 0; k < SOCK_CHUNKS; k++) free(sock_in[k]);
    free(in);
    free(A1);
    printf("done\n");
    return failed;
}
