/* Calls every symbol that libzio.so hooks, with sizes the test knows, and
 * prints a line per call with a checksum of what it produced. The test runs
 * it with and without zio: stdout must be identical, and zio's counters must
 * show each hook was reached with at least the bytes listed in EXPECT lines.
 *
 * usage: all_hooks SCRATCH_DIR
 * Built with -fno-builtin so that copies stay real calls.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fortified.h"

#define N 100000 /* bytes per copy and per file IO */
#define S 20000  /* bytes per stream socket transfer (fits the socket buffer) */
#define D 4000   /* bytes per datagram */

static unsigned char src[N], dst[2 * N], buf[2 * N];

static uint64_t fnv(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static void die(const char *what) {
    fprintf(stderr, "all_hooks: %s: %s\n", what, strerror(errno));
    exit(1);
}

#define CHECK(x) do { if ((x) < 0) die(#x); } while (0)

static void report(const char *name, long ret, const void *p, size_t n) {
    printf("%-14s ret=%ld sum=%016llx\n", name, ret, (unsigned long long)fnv(p, n));
}

static int clone_pipe;
static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig) {
    (void)sig;
    got_usr1++;
}

/* A clone child: the checksum of a copied buffer, through a pipe. */
static int clone_child(void *arg) {
    (void)arg;
    memcpy(dst, src, N);
    uint64_t s = fnv(dst, N);
    return write(clone_pipe, &s, sizeof s) == sizeof s ? 0 : 1;
}

/* Reads exactly n bytes from a stream socket with the given receive call. */
static void recv_all(int fd, unsigned char *p, size_t n, int how) {
    size_t got = 0;
    while (got < n) {
        ssize_t r;
        if (how == 0) r = recv(fd, p + got, n - got, 0);
        else r = __recv_chk(fd, p + got, n - got, sizeof buf - got, 0);
        if (r <= 0) die("recv");
        got += r;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: all_hooks DIR\n"); return 2; }
    for (size_t i = 0; i < N; i++) src[i] = (unsigned char)(i * 131 + (i >> 9));

    /* Copies. */
    report("memcpy", 0, memcpy(dst, src, N) == dst ? dst : NULL, N);
    memcpy(buf, src, N);
    memmove(buf + 1000, buf, N - 1000); /* overlapping, upward */
    report("memmove", 0, buf, N);
    report("mempcpy", (unsigned char *)mempcpy(dst, src + 1, N - 1) - dst, dst, N);
    report("__memcpy_chk", 0, __memcpy_chk(dst, src, N, sizeof dst), N);
    memcpy(buf, src, N);
    __memmove_chk(buf, buf + 3000, N - 3000, sizeof buf); /* overlapping, downward */
    report("__memmove_chk", 0, buf, N);
    report("__mempcpy_chk", (unsigned char *)__mempcpy_chk(dst, src, N, sizeof dst) - dst, dst, N);

    /* Files. */
    char path[4096];
    snprintf(path, sizeof path, "%s/all_hooks.dat", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd);
    CHECK(write(fd, src, N));
    CHECK(pwrite(fd, src, N, N));
    CHECK(pwrite64(fd, src, N, 2 * N));
    struct iovec wv[2] = {{src, N / 2}, {src + N / 2, N / 2}};
    CHECK(lseek(fd, 3 * N, SEEK_SET));
    CHECK(writev(fd, wv, 2));
    CHECK(pwritev(fd, wv, 2, 4 * N));
    CHECK(pwritev2(fd, wv, 2, 5 * N, 0));
    CHECK(lseek(fd, 0, SEEK_SET));
    long r;
    r = read(fd, buf, N); report("read", r, buf, N);
    r = __read_chk(fd, buf, N, sizeof buf); report("__read_chk", r, buf, N);
    r = pread(fd, buf, N, 2 * N); report("pread", r, buf, N);
    r = pread64(fd, buf, N, 3 * N); report("pread64", r, buf, N);
    r = __pread_chk(fd, buf, N, 4 * N, sizeof buf); report("__pread_chk", r, buf, N);
    r = __pread64_chk(fd, buf, N, 5 * N, sizeof buf); report("__pread64_chk", r, buf, N);
    struct iovec rv[2] = {{buf, N / 2}, {buf + N / 2, N / 2}};
    CHECK(lseek(fd, N, SEEK_SET));
    r = readv(fd, rv, 2); report("readv", r, buf, N);
    r = preadv(fd, rv, 2, 2 * N); report("preadv", r, buf, N);
    r = preadv2(fd, rv, 2, 3 * N, 0); report("preadv2", r, buf, N);
    close(fd);
    unlink(path);

    /* Stream sockets. */
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    CHECK(send(sp[0], src, S, 0));
    recv_all(sp[1], buf, S, 0); report("send+recv", S, buf, S);
    CHECK(sendto(sp[0], src + 1, S, 0, NULL, 0));
    recv_all(sp[1], buf, S, 1); report("sendto+__recv_chk", S, buf, S);
    struct iovec mv[2] = {{src + 2, S / 2}, {src + 2 + S / 2, S / 2}};
    struct msghdr mh = {.msg_iov = mv, .msg_iovlen = 2};
    CHECK(sendmsg(sp[0], &mh, 0));
    struct iovec mrv[1] = {{buf, S}};
    struct msghdr mrh = {.msg_iov = mrv, .msg_iovlen = 1};
    size_t got = 0;
    while (got < S) {
        mrv[0].iov_base = buf + got;
        mrv[0].iov_len = S - got;
        r = recvmsg(sp[1], &mrh, 0);
        if (r <= 0) die("recvmsg");
        got += r;
    }
    report("sendmsg+recvmsg", got, buf, S);
    close(sp[0]);
    close(sp[1]);

    /* Datagram sockets. */
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp));
    CHECK(sendto(sp[0], src, D, 0, NULL, 0));
    r = recvfrom(sp[1], buf, D, 0, NULL, NULL); report("recvfrom", r, buf, D);
    CHECK(send(sp[0], src + 5, D, 0));
    r = __recvfrom_chk(sp[1], buf, D, sizeof buf, 0, NULL, NULL); report("__recvfrom_chk", r, buf, D);
    struct iovec dv[3] = {{src, D}, {src + D, D}, {src + 2 * D, D}};
    struct mmsghdr mm[3];
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) { mm[i].msg_hdr.msg_iov = &dv[i]; mm[i].msg_hdr.msg_iovlen = 1; }
    r = sendmmsg(sp[0], mm, 3, 0);
    printf("sendmmsg       ret=%ld\n", r);
    struct iovec drv[3] = {{buf, D}, {buf + D, D}, {buf + 2 * D, D}};
    struct mmsghdr rmm[3];
    memset(rmm, 0, sizeof rmm);
    for (int i = 0; i < 3; i++) { rmm[i].msg_hdr.msg_iov = &drv[i]; rmm[i].msg_hdr.msg_iovlen = 1; }
    r = recvmmsg(sp[1], rmm, 3, 0, NULL); report("recvmmsg", r, buf, 3 * D);
    close(sp[0]);
    close(sp[1]);

    /* Allocator and mappings. */
    unsigned char *h = malloc(N);
    if (!h) die("malloc");
    memcpy(h, src, N);
    h = realloc(h, 2 * N);
    if (!h) die("realloc");
    report("realloc", 0, h, N);
    free(h);
    size_t len = 1 << 20;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) die("mmap");
    memset(m, 0xab, len);
    CHECK(madvise(m, len / 2, MADV_DONTNEED)); /* private anonymous: reads back as zeros */
    report("madvise", 0, m, len);
    CHECK(mprotect(m, len / 2, PROT_READ));
    report("mprotect", 0, m, len);
    CHECK(mprotect(m, len / 2, PROT_READ | PROT_WRITE));
    m = mremap(m, len, 2 * len, MREMAP_MAYMOVE);
    if (m == MAP_FAILED) die("mremap");
    report("mremap", 0, m, len);
    CHECK(munmap(m, 2 * len));

    /* fork: the child sends a checksum of a copied buffer through a pipe. */
    int pp[2];
    CHECK(pipe(pp));
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid);
    if (pid == 0) {
        memcpy(dst, src, N);
        uint64_t s = fnv(dst, N);
        if (write(pp[1], &s, sizeof s) != sizeof s) _exit(1);
        _exit(0);
    }
    uint64_t child_sum = 0;
    if (read(pp[0], &child_sum, sizeof child_sum) != sizeof child_sum) die("pipe read");
    int status;
    waitpid(pid, &status, 0);
    printf("fork           child=%016llx exit=%d\n", (unsigned long long)child_sum, WEXITSTATUS(status));

    /* clone without CLONE_VM (a copy, as fork) and syscall (getppid). */
    clone_pipe = pp[1];
    static unsigned char stack[64 << 10];
    pid = clone(clone_child, stack + sizeof stack, SIGCHLD, NULL);
    CHECK(pid);
    if (read(pp[0], &child_sum, sizeof child_sum) != sizeof child_sum) die("pipe read");
    waitpid(pid, &status, 0);
    printf("clone          child=%016llx exit=%d\n", (unsigned long long)child_sum, WEXITSTATUS(status));
    printf("syscall        ret=%d\n", syscall(SYS_getppid) == getppid());

    /* Signal dispositions: installed, reported back, raised, restored. */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGUSR1, &sa, &old));
    CHECK(sigaction(SIGUSR1, NULL, &old));
    CHECK(raise(SIGUSR1));
    printf("sigaction      same=%d flags=%x got=%d\n", old.sa_handler == on_usr1, old.sa_flags & (SA_RESTART | SA_SIGINFO), (int)got_usr1);
    void (*prev)(int) = signal(SIGUSR2, on_usr1);
    void (*back)(int) = signal(SIGUSR2, SIG_DFL);
    CHECK(raise(SIGUSR1));
    printf("signal         prev=%d back=%d got=%d\n", prev == SIG_DFL, back == on_usr1, (int)got_usr1);
    printf("done\n");
    return 0;
}
