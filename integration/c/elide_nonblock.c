/* A correct non-blocking writer pushing elided copies through a socket with
 * a small send buffer: partial writes and EAGAIN must come back exactly as
 * without zio, and the byte stream must be the same.
 *
 * usage: elide_nonblock SCRATCH_DIR unix|tcp
 *
 * main writes a pattern file (about 8 MiB), then reads it back in 512 KiB
 * chunks with read() into two input buffers in turn, copies each chunk with
 * memcpy into an output buffer (elided under zio: the pages stay unmapped),
 * and sends the output buffer on a non-blocking stream socket (a socketpair,
 * or a TCP connection on 127.0.0.1) whose SO_SNDBUF is 32 KiB, alternating
 * write() and send(), advancing by what each call returned and waiting in
 * poll(POLLOUT) after EAGAIN. After the first partial write of a chunk it
 * changes the input buffer (the copy's original): the rest of the copy must
 * still go out with the old bytes. A reader thread receives slowly (small
 * recv sizes, some large ones, short sleeps) and checksums the stream.
 *
 * Prints the stream's length and FNV-1a 64 checksum, whether it equals the
 * file, and eagain_seen=yes / partial_seen=yes when those happened (counts
 * vary from run to run, so they are not printed).
 * Built with -fno-builtin so that copies stay real calls.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (512 << 10)
#define FILE_SIZE ((8 << 20) + 12345)
#define SNDBUF (32 << 10)
#define FNV0 1469598103934665603ULL

static void die(const char *what) {
    fprintf(stderr, "elide_nonblock: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static uint64_t next(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void pause_us(long us) {
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

struct reader {
    int fd;
    size_t total;
    uint64_t sum;
};

static void *read_slowly(void *arg) {
    struct reader *r = arg;
    static unsigned char buf[128 << 10];
    uint64_t x = 12345;
    r->sum = FNV0;
    pause_us(20000); /* let the writer fill the socket first */
    for (long k = 0;; k++) {
        size_t want = k % 50 == 49 ? sizeof buf : 1 + next(&x) % 8192;
        ssize_t got = recv(r->fd, buf, want, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            die("recv");
        }
        if (got == 0) break;
        r->sum = fnv(r->sum, buf, (size_t)got);
        r->total += (size_t)got;
        if (k % 64 == 63) pause_us(200);
    }
    return NULL;
}

/* A connected pair: [0] for the writer, [1] for the reader. */
static void connect_pair(const char *mode, int sv[2]) {
    if (strcmp(mode, "unix") == 0) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) die("socketpair");
        return;
    }
    if (strcmp(mode, "tcp") != 0) {
        fprintf(stderr, "elide_nonblock: mode must be unix or tcp\n");
        exit(2);
    }
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0) die("socket");
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        die("listen on 127.0.0.1");
    sv[0] = socket(AF_INET, SOCK_STREAM, 0);
    if (sv[0] < 0) die("socket");
    int small = SNDBUF; /* set before connecting: the window follows */
    if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) < 0) die("SO_SNDBUF");
    if (connect(sv[0], (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    sv[1] = accept(l, NULL, NULL);
    if (sv[1] < 0) die("accept");
    close(l);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: elide_nonblock DIR unix|tcp\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/nonblock.in", argv[1]);

    unsigned char *gen = malloc(FILE_SIZE);
    if (!gen) die("malloc");
    uint64_t x = 0x243F6A8885A308D3ULL;
    for (size_t i = 0; i < FILE_SIZE; i++) gen[i] = (unsigned char)(next(&x) >> 24);
    uint64_t file_sum = fnv(FNV0, gen, FILE_SIZE);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("create input");
    for (size_t done = 0; done < FILE_SIZE;) {
        ssize_t w = write(fd, gen + done, FILE_SIZE - done);
        if (w < 0) die("write input");
        done += (size_t)w;
    }
    free(gen);
    if (lseek(fd, 0, SEEK_SET) < 0) die("lseek");

    int sv[2];
    connect_pair(argv[2], sv);
    int small = SNDBUF;
    if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) < 0) die("SO_SNDBUF");
    if (setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small) < 0) die("SO_RCVBUF");
    int fl = fcntl(sv[0], F_GETFL);
    if (fl < 0 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) < 0) die("O_NONBLOCK");

    struct reader r = {sv[1], 0, 0};
    pthread_t t;
    if (pthread_create(&t, NULL, read_slowly, &r)) die("pthread_create");

    unsigned char *in[2] = {malloc(CHUNK + 4096), malloc(CHUNK + 4096)};
    unsigned char *out = malloc(CHUNK + 8192);
    if (!in[0] || !in[1] || !out) die("malloc");
    long eagain = 0, partial = 0, calls = 0;
    for (int c = 0;; c++) {
        unsigned char *src = in[c % 2] + (c % 5) * 8; /* odd offsets */
        size_t n = 0;
        while (n < CHUNK) {
            ssize_t got = read(fd, src + n, CHUNK - n);
            if (got < 0) die("read");
            if (got == 0) break;
            n += (size_t)got;
        }
        if (n == 0) break;
        unsigned char *p = out + (c % 3) * 1000;
        memcpy(p, src, n);

        size_t left = n;
        int changed = 0;
        while (left > 0) {
            ssize_t w = calls++ % 2 ? send(sv[0], p, left, MSG_NOSIGNAL) : write(sv[0], p, left);
            if (w < 0) {
                if (errno == EINTR) continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) die("write/send");
                eagain++;
                struct pollfd pfd = {sv[0], POLLOUT, 0};
                int pr = poll(&pfd, 1, 10000);
                if (pr < 0 && errno != EINTR) die("poll");
                if (pr == 0) {
                    fprintf(stderr, "elide_nonblock: socket not writable for 10 s\n");
                    exit(1);
                }
                continue;
            }
            if ((size_t)w < left) {
                partial++;
                if (!changed) {
                    /* The copy still being sent must keep these bytes. */
                    for (size_t k = 0; k < n; k += 40000) src[k] ^= 0xff;
                    changed = 1;
                }
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (shutdown(sv[0], SHUT_WR) < 0) die("shutdown");
    pthread_join(t, NULL);
    close(sv[0]);
    close(sv[1]);
    close(fd);
    unlink(path);
    free(in[0]);
    free(in[1]);
    free(out);

    printf("bytes=%zu sum=%016llx %s\n", r.total, (unsigned long long)r.sum,
           r.total == FILE_SIZE && r.sum == file_sum ? "equals-file" : "DIFFERS-FROM-FILE");
    printf("eagain_seen=%s\n", eagain > 0 ? "yes" : "no");
    printf("partial_seen=%s\n", partial > 0 ? "yes" : "no");
    return 0;
}
