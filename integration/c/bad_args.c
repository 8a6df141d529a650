/* Every hooked IO and memory call with arguments the kernel refuses: NULL,
 * unmapped and misaligned pointers, negative and oversized counts, closed
 * descriptors. Each case runs in its own child (a crash is reported, not
 * fatal) and prints its return value and errno; run with and without zio,
 * the output must be the same.
 *
 * Usage: bad_args DIR. Each case runs twice: before anything is tracked,
 * and after an elided 1 MiB copy (the engine's paths, where the hooks read
 * the caller's arrays themselves). */
#include "common.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define BIG (1 << 20)

extern ssize_t __read_chk(int, void *, size_t, size_t);
extern ssize_t __pread_chk(int, void *, size_t, off_t, size_t);
extern ssize_t __pread64_chk(int, void *, size_t, off_t, size_t);
extern ssize_t __recv_chk(int, void *, size_t, size_t, int);
extern ssize_t __recvfrom_chk(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);

static int file_fd, out_fd, sk[2], closed_fd;
static unsigned char *gone;     /* an unmapped page */
static unsigned char *edge;     /* the last 16 bytes of a page before an unmapped one */
static unsigned char buf[8192];
static unsigned char *copy;     /* an elided copy, in the second round */
static struct iovec good[2];
static struct msghdr good_msg;
/* Through volatile pointers the compiler cannot see a NULL or a size. */
static void *volatile nowhere;
static struct iovec *volatile goodp;
static volatile int minus_one = -1;

static void feed(void) { (void)!write(sk[0], "0123456789abcdef", 16); }

static struct iovec *misaligned_iov(void) {
    static unsigned char raw[2 * sizeof(struct iovec) + 1];
    memcpy(raw + 1, good, sizeof good);
    return (struct iovec *)(void *)(raw + 1);
}

static struct msghdr with_iov(struct iovec *v, size_t n) {
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = v;
    m.msg_iovlen = n;
    return m;
}

static long c_read_null(void) { return read(file_fd, nowhere, 100); }
static long c_read_gone(void) { return read(file_fd, gone, 100); }
static long c_read_closed(void) { return read(closed_fd, buf, 100); }
/* A read into a buffer copied from and then freed, which glibc unmapped
 * (4 MiB, above its mmap threshold): zio remembers such buffers for the
 * input the allocator hands them back to, and must not take this stale
 * pointer for one. */
static long c_read_freed(void) {
    unsigned char *in = malloc(4 * BIG), *cp = malloc(BIG);
    if (!in || !cp) die("malloc");
    full_pread(file_fd, in, BIG, 0);
    memcpy(cp, in, BIG);
    unsigned char *volatile stale = in;
    free(cp);
    free(in);
    return pread(file_fd, stale, BIG, 0);
}
static long c_read_chk(void) { return __read_chk(file_fd, nowhere, 100, 100); }
static long c_pread_neg(void) { return pread(file_fd, buf, 100, -1); }
static long c_pread64_gone(void) { return pread64(file_fd, gone, 100, 0); }
static long c_pread_chk(void) { return __pread_chk(file_fd, gone, 100, 0, 100); }
static long c_pread64_chk(void) { return __pread64_chk(closed_fd, buf, 100, 0, 100); }
static long c_readv_null(void) { return readv(file_fd, nowhere, 2); }
static long c_readv_gone(void) { return readv(file_fd, (struct iovec *)gone, 2); }
static long c_readv_edge(void) { return readv(file_fd, (struct iovec *)edge, 2); }
static long c_readv_neg(void) { return readv(file_fd, goodp, minus_one); }
static long c_readv_5000(void) { return readv(file_fd, goodp, 5000); }
static long c_readv_1025(void) { return readv(file_fd, goodp, 1025); }
static long c_readv_misaligned(void) { return readv(file_fd, misaligned_iov(), 2); }
static long c_readv_bad_base(void) {
    struct iovec v[2] = {{buf, 10}, {gone, 10}};
    return readv(file_fd, v, 2);
}
static long c_preadv_null(void) { return preadv(file_fd, nowhere, 2, 0); }
static long c_preadv_closed(void) { return preadv(closed_fd, good, 2, 0); }
static long c_preadv2_gone(void) { return preadv2(file_fd, (struct iovec *)gone, 2, 0, 0); }
static long c_preadv2_flags(void) { return preadv2(file_fd, good, 2, 0, 0x7fff0000); }
static long c_recv_null(void) { feed(); return recv(sk[1], nowhere, 16, MSG_DONTWAIT); }
static long c_recv_chk(void) { feed(); return __recv_chk(sk[1], gone, 16, 16, MSG_DONTWAIT); }
static long c_recvfrom_gone(void) { feed(); return recvfrom(sk[1], gone, 16, MSG_DONTWAIT, NULL, NULL); }
static long c_recvfrom_chk(void) {
    return __recvfrom_chk(closed_fd, buf, 16, 16, MSG_DONTWAIT, NULL, NULL);
}
static long c_recvmsg_null(void) { feed(); return recvmsg(sk[1], nowhere, MSG_DONTWAIT); }
static long c_recvmsg_gone(void) { feed(); return recvmsg(sk[1], (struct msghdr *)gone, MSG_DONTWAIT); }
static long c_recvmsg_bad_iov(void) {
    struct msghdr m = with_iov((struct iovec *)gone, 2);
    feed();
    return recvmsg(sk[1], &m, MSG_DONTWAIT);
}
static long c_recvmsg_null_iov(void) {
    struct msghdr m = with_iov(nowhere, 2);
    feed();
    return recvmsg(sk[1], &m, MSG_DONTWAIT);
}
static long c_recvmsg_5000(void) {
    struct msghdr m = with_iov(goodp, 5000);
    feed();
    return recvmsg(sk[1], &m, MSG_DONTWAIT);
}
static long c_recvmmsg_null(void) { feed(); return recvmmsg(sk[1], nowhere, 2, MSG_DONTWAIT, NULL); }
static long c_recvmmsg_gone(void) {
    feed();
    return recvmmsg(sk[1], (struct mmsghdr *)gone, 2, MSG_DONTWAIT, NULL);
}
static long c_recvmmsg_bad_iov(void) {
    struct mmsghdr m[2];
    memset(m, 0, sizeof m);
    m[0].msg_hdr = with_iov((struct iovec *)gone, 1);
    feed();
    return recvmmsg(sk[1], m, 2, MSG_DONTWAIT, NULL);
}
static long c_write_null(void) { return write(out_fd, nowhere, 100); }
static long c_write_gone(void) { return write(out_fd, gone, 100); }
static long c_write_closed(void) { return write(closed_fd, buf, 100); }
static long c_pwrite_neg(void) { return pwrite(out_fd, buf, 100, -5); }
static long c_pwrite64_gone(void) { return pwrite64(out_fd, gone, 100, 0); }
static long c_writev_null(void) { return writev(out_fd, nowhere, 2); }
static long c_writev_gone(void) { return writev(out_fd, (struct iovec *)gone, 2); }
static long c_writev_edge(void) { return writev(out_fd, (struct iovec *)edge, 2); }
static long c_writev_neg(void) { return writev(out_fd, goodp, 3 * minus_one); }
static long c_writev_5000(void) { return writev(out_fd, goodp, 5000); }
static long c_writev_misaligned(void) { return writev(out_fd, misaligned_iov(), 2); }
static long c_writev_bad_base(void) {
    struct iovec v[2] = {{copy ? copy : buf, copy ? BIG : 10}, {gone, 10}};
    return writev(out_fd, v, 2);
}
static long c_pwritev_null(void) { return pwritev(out_fd, nowhere, 2, 0); }
static long c_pwritev_closed(void) { return pwritev(closed_fd, good, 2, 0); }
static long c_pwritev2_gone(void) { return pwritev2(out_fd, (struct iovec *)gone, 2, 0, 0); }
static long c_send_null(void) { return send(sk[0], nowhere, 16, MSG_DONTWAIT); }
static long c_send_copy(void) {
    return send(closed_fd, copy ? copy : buf, copy ? BIG : 10, MSG_DONTWAIT);
}
static long c_sendto_gone(void) { return sendto(sk[0], gone, 16, MSG_DONTWAIT, NULL, 0); }
static long c_sendmsg_null(void) { return sendmsg(sk[0], nowhere, MSG_DONTWAIT); }
static long c_sendmsg_gone(void) { return sendmsg(sk[0], (struct msghdr *)gone, MSG_DONTWAIT); }
static long c_sendmsg_bad_iov(void) {
    struct msghdr m = with_iov((struct iovec *)gone, 2);
    return sendmsg(sk[0], &m, MSG_DONTWAIT);
}
static long c_sendmsg_5000(void) {
    struct msghdr m = with_iov(goodp, 5000);
    return sendmsg(sk[0], &m, MSG_DONTWAIT);
}
static long c_sendmsg_misaligned(void) {
    static unsigned char raw[sizeof(struct msghdr) + 1];
    memcpy(raw + 1, &good_msg, sizeof good_msg);
    return sendmsg(sk[0], (struct msghdr *)(void *)(raw + 1), MSG_DONTWAIT);
}
static long c_sendmmsg_null(void) { return sendmmsg(sk[0], nowhere, 2, MSG_DONTWAIT); }
static long c_sendmmsg_gone(void) { return sendmmsg(sk[0], (struct mmsghdr *)gone, 2, MSG_DONTWAIT); }
static long c_sendmmsg_bad_iov(void) {
    struct mmsghdr m[2];
    memset(m, 0, sizeof m);
    m[0].msg_hdr = with_iov((struct iovec *)gone, 1);
    m[1].msg_hdr = good_msg;
    return sendmmsg(sk[0], m, 2, MSG_DONTWAIT);
}
static long c_memcpy_zero(void) { return memcpy(nowhere, nowhere, 0) == nowhere; }
static long c_memmove_zero(void) { return memmove(gone, gone, 0) == gone; }
static long c_mempcpy_zero(void) { return mempcpy(nowhere, gone, 0) == nowhere; }
static void on_usr1(int sig) { (void)sig; }
static int clone_fn(void *arg) { (void)arg; return 0; }
static long c_sigaction_gone(void) { return sigaction(SIGUSR1, (struct sigaction *)gone, NULL); }
static long c_sigaction_old_gone(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    return sigaction(SIGUSR1, &sa, (struct sigaction *)gone);
}
static long c_sigaction_zero(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    return sigaction(0, &sa, NULL);
}
static long c_sigaction_kill(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    return sigaction(SIGKILL, &sa, NULL);
}
static long c_signal_999(void) { return signal(999, on_usr1) == SIG_ERR ? -1 : 0; }
static long c_syscall_closed(void) { return syscall(SYS_read, closed_fd, buf, 10); }
static long c_syscall_clone3_gone(void) { return syscall(SYS_clone3, gone, 88); }
static long c_syscall_bad_number(void) { return syscall(100000); }
static long c_clone_no_stack(void) { return clone(clone_fn, NULL, SIGCHLD, NULL); }
static int (*volatile no_fn)(void *);
static long c_clone_no_fn(void) {
    static unsigned char stack[16 << 10];
    return clone(no_fn, stack + sizeof stack, SIGCHLD, NULL);
}

/* A successful call leaves errno as it was (zio's own work included),
 * with the iovec on the heap, where zio asks the kernel whether it may
 * read it. */
static long c_errno_kept_readv(void) {
    struct iovec *v = malloc(2 * sizeof *v);
    v[0] = good[0], v[1] = good[1];
    errno = 77;
    long r = readv(file_fd, v, 2);
    long e = errno;
    free(v);
    return r == 200 ? e : -1;
}
static long c_errno_kept_writev(void) {
    struct iovec *v = malloc(2 * sizeof *v);
    v[0] = (struct iovec){copy ? copy : buf, copy ? BIG : 10};
    v[1] = good[1];
    errno = 78;
    long r = writev(out_fd, v, 2);
    long e = errno;
    free(v);
    return r > 0 ? e : -1;
}
static long c_free_null(void) { free(NULL); return 0; }
static long c_realloc_null(void) {
    void *p = realloc(nowhere, 100);
    free(p);
    return p != NULL;
}
static long c_munmap_misaligned(void) { return munmap(buf + 1, 4096); }
static long c_munmap_zero(void) { return munmap(gone, 0); }
static long c_mremap_gone(void) { return (long)(mremap(gone, 4096, 8192, 0) == MAP_FAILED); }
static long c_madvise_misaligned(void) { return madvise(buf + 1, 4096, MADV_DONTNEED); }
static long c_madvise_gone(void) { return madvise(gone, 4096, MADV_DONTNEED); }
static long c_mprotect_gone(void) { return mprotect(gone, 4096, PROT_READ); }

static const struct {
    const char *name;
    long (*run)(void);
} cases[] = {
#define C(f) {#f, c_##f}
    C(read_null), C(read_gone), C(read_closed), C(read_freed), C(read_chk), C(pread_neg), C(pread64_gone),
    C(pread_chk), C(pread64_chk), C(readv_null), C(readv_gone), C(readv_edge), C(readv_neg),
    C(readv_5000), C(readv_1025), C(readv_misaligned), C(readv_bad_base), C(preadv_null),
    C(preadv_closed), C(preadv2_gone), C(preadv2_flags), C(recv_null), C(recv_chk),
    C(recvfrom_gone), C(recvfrom_chk), C(recvmsg_null), C(recvmsg_gone), C(recvmsg_bad_iov),
    C(recvmsg_null_iov), C(recvmsg_5000), C(recvmmsg_null), C(recvmmsg_gone),
    C(recvmmsg_bad_iov), C(write_null), C(write_gone), C(write_closed), C(pwrite_neg),
    C(pwrite64_gone), C(writev_null), C(writev_gone), C(writev_edge), C(writev_neg),
    C(writev_5000), C(writev_misaligned), C(writev_bad_base), C(pwritev_null),
    C(pwritev_closed), C(pwritev2_gone), C(send_null), C(send_copy), C(sendto_gone),
    C(sendmsg_null), C(sendmsg_gone), C(sendmsg_bad_iov), C(sendmsg_5000),
    C(sendmsg_misaligned), C(sendmmsg_null), C(sendmmsg_gone), C(sendmmsg_bad_iov),
    C(memcpy_zero), C(memmove_zero), C(mempcpy_zero), C(free_null), C(realloc_null),
    C(munmap_misaligned), C(munmap_zero), C(mremap_gone), C(madvise_misaligned),
    C(madvise_gone), C(mprotect_gone), C(sigaction_gone), C(sigaction_old_gone),
    C(sigaction_zero), C(sigaction_kill), C(signal_999), C(syscall_closed),
    C(syscall_clone3_gone), C(syscall_bad_number), C(clone_no_stack), C(clone_no_fn), C(errno_kept_readv),
    C(errno_kept_writev),
#undef C
};

/* An elided copy kept alive: the hooks then take the engine's paths. */
static void track(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/big", dir);
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("open big");
    unsigned char *src = malloc(BIG);
    copy = malloc(BIG);
    if (!src || !copy) die("malloc");
    full_pread(fd, src, BIG, 0);
    memcpy(copy, src, BIG);
    close(fd);
}

static void setup(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/big", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) die("create big");
    unsigned char *p = malloc(BIG);
    if (!p) die("malloc");
    for (size_t i = 0; i < BIG; i++) p[i] = (unsigned char)(i * 7 + i / 4096);
    full_write(fd, p, BIG);
    free(p);
    close(fd);
    file_fd = open(path, O_RDONLY);
    snprintf(path, sizeof path, "%s/out", dir);
    out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (file_fd < 0 || out_fd < 0) die("open");
    closed_fd = 1000; /* a descriptor that is not open */
    if (fcntl(closed_fd, F_GETFD) != -1) die("fd 1000 is open");
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sk)) die("socketpair");
    unsigned char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) die("mmap");
    if (munmap(m + 4096, 4096)) die("munmap");
    gone = m + 4096;
    edge = m + 4096 - sizeof(struct iovec);
    memset(m, 0, 4096);
    ((struct iovec *)edge)->iov_base = buf;
    ((struct iovec *)edge)->iov_len = 10;
    good[0] = (struct iovec){buf, 100};
    good[1] = (struct iovec){buf + 100, 100};
    good_msg = with_iov(good, 2);
    goodp = good;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: bad_args DIR\n");
        return 2;
    }
    setup(argv[1]);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid < 0) die("fork");
            if (pid == 0) {
                if (round == 1) track(argv[1]);
                errno = 0;
                long r = cases[i].run();
                int e = r < 0 ? errno : 0;
                printf("%-20s round %d: ret %ld errno %d\n", cases[i].name, round, r, e);
                exit(0);
            }
            int st;
            if (waitpid(pid, &st, 0) != pid) die("waitpid");
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                printf("%-20s round %d: %s %d\n", cases[i].name, round,
                       WIFSIGNALED(st) ? "killed by signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            }
        }
    }
    printf("done\n");
    return 0;
}
