/* The pass-through path of every hook allocates nothing inside zio
 * (integration/tests/passthrough_alloc.rs).
 *
 * usage: passthrough_alloc SCRATCH_DIR
 *
 * Calls each hooked symbol ROUNDS times with small sizes and nothing
 * tracked (no input reaches ZIO_THRESHOLD), and prints one line per hook,
 * `<hook> allocations=<n>`: how many blocks zio's own heap handed out over
 * those calls (zio_counter("heap_allocations"), found with dlsym; the
 * program prints "absent" without zio). Whatever a call needs besides its
 * hook (data to receive, a mapping to unmap, draining what was sent) is
 * done with syscall(2), whose hook only forwards anything but a fork or a
 * clone, so each line counts its own hook alone. Last, one 1 MiB pread starts the engine, which does
 * allocate: the `engine` line shows that the counter counts.
 *
 * Every call's result is checked: a failure exits with status 2.
 * Built with -fno-builtin so that copies stay real calls.
 */
#include "common.h"
#include <dlfcn.h>
#include <sched.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "fortified.h"

#define ROUNDS 200
#define M 100 /* bytes per call */
#define PAGE 4096

typedef long long (*counter_fn)(const char *);
static counter_fn counter;

static unsigned char a[M], b[2 * M];
static int file, sock[2], devnull;

static long long heap(void) { return counter("heap_allocations"); }

/* Runs the statements ROUNDS times and prints the blocks zio allocated meanwhile. */
/* Waits for a child that must exit with status 0. */
static void reap(pid_t pid) {
    int st;
    if (pid < 0) die("fork or clone");
    if (waitpid(pid, &st, 0) != pid) die("waitpid");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("child");
}

static void on_signal(int sig) { (void)sig; }

static int child(void *arg) {
    (void)arg;
    return 0;
}

#define MEASURE(name, ...)                                                   \
    do {                                                                     \
        long long before_ = heap();                                          \
        for (int i_ = 0; i_ < ROUNDS; i_++) { __VA_ARGS__; }                 \
        printf("%s allocations=%lld\n", name, heap() - before_);             \
    } while (0)

#define OK(x) do { if ((long)(x) < 0) die(#x); } while (0)
#define IS(x, want) do { if ((long)(x) != (long)(want)) die(#x); } while (0)

/* One datagram of M bytes waiting on sock[0] (sent with a raw call). */
static void feed(void) { IS(syscall(SYS_write, sock[1], a, M), M); }

/* Reads back (raw) the datagram a send call put on sock[1]'s peer. */
static void drain(void) { IS(syscall(SYS_read, sock[0], b, sizeof b), M); }

static struct iovec three(unsigned char *p, int k) {
    return (struct iovec){p + k * (M / 3), M / 3 + (k == 2 ? M % 3 : 0)};
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: passthrough_alloc SCRATCH_DIR\n");
        return 2;
    }
    alarm(60);
    counter = (counter_fn)dlsym(RTLD_DEFAULT, "zio_counter");
    if (!counter) {
        printf("absent\n");
        return 0;
    }
    if (heap() < 0) die("zio_counter(\"heap_allocations\")");
    for (int i = 0; i < M; i++) a[i] = (unsigned char)(i * 7 + 1);

    char path[4096];
    snprintf(path, sizeof path, "%s/data", argv[1]);
    file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    OK(file);
    IS(syscall(SYS_pwrite64, file, a, M, 0), M);
    devnull = open("/dev/null", O_WRONLY);
    OK(devnull);
    OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sock));

    struct iovec rv[3] = {three(b, 0), three(b, 1), three(b, 2)};
    struct iovec wv[3] = {three(a, 0), three(a, 1), three(a, 2)};
    struct sockaddr_storage from;
    socklen_t fl;

    /* Copies. */
    MEASURE("memcpy", IS(memcpy(b, a, M), b));
    MEASURE("memmove", IS(memmove(b + 1, b, M), b + 1));
    MEASURE("mempcpy", IS(mempcpy(b, a, M), b + M));
    MEASURE("__memcpy_chk", IS(__memcpy_chk(b, a, M, sizeof b), b));
    MEASURE("__memmove_chk", IS(__memmove_chk(b + 1, b, M, sizeof b - 1), b + 1));
    MEASURE("__mempcpy_chk", IS(__mempcpy_chk(b, a, M, sizeof b), b + M));

    /* Input into one buffer. */
    MEASURE("read", {
        OK(lseek(file, 0, SEEK_SET));
        IS(read(file, b, M), M);
    });
    MEASURE("__read_chk", {
        OK(lseek(file, 0, SEEK_SET));
        IS(__read_chk(file, b, M, sizeof b), M);
    });
    MEASURE("pread", IS(pread(file, b, M, 0), M));
    MEASURE("pread64", IS(pread64(file, b, M, 0), M));
    MEASURE("__pread_chk", IS(__pread_chk(file, b, M, 0, sizeof b), M));
    MEASURE("__pread64_chk", IS(__pread64_chk(file, b, M, 0, sizeof b), M));

    /* Input into an iovec. */
    MEASURE("readv", {
        OK(lseek(file, 0, SEEK_SET));
        IS(readv(file, rv, 3), M);
    });
    MEASURE("preadv", IS(preadv(file, rv, 3, 0), M));
    MEASURE("preadv2", IS(preadv2(file, rv, 3, 0, 0), M));

    /* Input from a socket. */
    MEASURE("recv", {
        feed();
        IS(recv(sock[0], b, sizeof b, 0), M);
    });
    MEASURE("__recv_chk", {
        feed();
        IS(__recv_chk(sock[0], b, sizeof b, sizeof b, 0), M);
    });
    MEASURE("recvfrom", {
        feed();
        fl = sizeof from;
        IS(recvfrom(sock[0], b, sizeof b, 0, (struct sockaddr *)&from, &fl), M);
    });
    MEASURE("__recvfrom_chk", {
        feed();
        fl = sizeof from;
        IS(__recvfrom_chk(sock[0], b, sizeof b, sizeof b, 0, (struct sockaddr *)&from, &fl), M);
    });
    MEASURE("recvmsg", {
        feed();
        struct msghdr m = {.msg_iov = rv, .msg_iovlen = 3};
        IS(recvmsg(sock[0], &m, 0), M);
    });
    MEASURE("recvmmsg", {
        feed();
        feed();
        struct iovec one[2] = {{b, M}, {b + M, M}};
        struct mmsghdr mm[2] = {{.msg_hdr = {.msg_iov = &one[0], .msg_iovlen = 1}},
                                {.msg_hdr = {.msg_iov = &one[1], .msg_iovlen = 1}}};
        IS(recvmmsg(sock[0], mm, 2, MSG_DONTWAIT, NULL), 2);
    });

    /* Output. */
    MEASURE("write", IS(write(devnull, a, M), M));
    MEASURE("pwrite", IS(pwrite(file, a, M, 0), M));
    MEASURE("pwrite64", IS(pwrite64(file, a, M, 0), M));
    MEASURE("writev", IS(writev(devnull, wv, 3), M));
    MEASURE("pwritev", IS(pwritev(file, wv, 3, 0), M));
    MEASURE("pwritev2", IS(pwritev2(file, wv, 3, 0, 0), M));
    MEASURE("send", {
        IS(send(sock[1], a, M, 0), M);
        drain();
    });
    MEASURE("sendto", {
        IS(sendto(sock[1], a, M, 0, NULL, 0), M);
        drain();
    });
    MEASURE("sendmsg", {
        struct msghdr m = {.msg_iov = wv, .msg_iovlen = 3};
        IS(sendmsg(sock[1], &m, 0), M);
        drain();
    });
    MEASURE("sendmmsg", {
        struct mmsghdr mm[2] = {{.msg_hdr = {.msg_iov = wv, .msg_iovlen = 3}},
                                {.msg_hdr = {.msg_iov = wv, .msg_iovlen = 3}}};
        IS(sendmmsg(sock[1], mm, 2, 0), 2);
        drain();
        drain();
    });

    /* Memory. */
    MEASURE("free", {
        void *p = malloc(M);
        if (!p) die("malloc");
        free(p);
    });
    void *r = malloc(M);
    if (!r) die("malloc");
    MEASURE("realloc", {
        r = realloc(r, (size_t)M * (1 + i_ % 3));
        if (!r) die("realloc");
    });
    free(r);
    MEASURE("munmap", {
        void *p = (void *)syscall(SYS_mmap, NULL, PAGE, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) die("mmap");
        IS(munmap(p, PAGE), 0);
    });
    MEASURE("mremap", {
        void *p = (void *)syscall(SYS_mmap, NULL, PAGE, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) die("mmap");
        void *q = mremap(p, PAGE, 2 * PAGE, MREMAP_MAYMOVE);
        if (q == MAP_FAILED) die("mremap");
        IS(syscall(SYS_munmap, q, 2 * PAGE), 0);
    });
    void *page = (void *)syscall(SYS_mmap, NULL, PAGE, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) die("mmap");
    MEASURE("madvise", {
        *(volatile char *)page = 1;
        IS(madvise(page, PAGE, i_ % 2 ? MADV_DONTNEED : MADV_NORMAL), 0);
    });
    MEASURE("mprotect", IS(mprotect(page, PAGE, i_ % 2 ? PROT_READ : PROT_READ | PROT_WRITE), 0));
    IS(mprotect(page, PAGE, PROT_READ | PROT_WRITE), 0);
    fflush(stdout); /* the children exit without flushing */
    MEASURE("fork", if (i_ < 10) {
        pid_t pid = fork();
        OK(pid);
        if (pid == 0) _exit(0);
        reap(pid);
    });
    static unsigned char stack[64 << 10];
    MEASURE("clone", if (i_ < 10) reap(clone(child, stack + sizeof stack, SIGCHLD, NULL)));
    MEASURE("syscall", IS(syscall(SYS_getppid), getppid()));
    struct sigaction sa = {.sa_handler = on_signal};
    MEASURE("sigaction", IS(sigaction(SIGUSR1, i_ % 2 ? &sa : NULL, NULL), 0));
    MEASURE("signal", if (signal(SIGUSR2, i_ % 2 ? on_signal : SIG_DFL) == SIG_ERR) die("signal"));

    /* The engine starts at the first input reaching ZIO_THRESHOLD (64 KiB
     * by default) and allocates its state: the counter is live. */
    size_t big = 1 << 20;
    unsigned char *in;
    if (posix_memalign((void **)&in, PAGE, big)) die("posix_memalign");
    IS(syscall(SYS_ftruncate, file, big), 0);
    long long before = heap();
    IS(pread(file, in, big, 0), big);
    printf("engine allocations=%lld\n", heap() - before);
    printf("done\n");
    return 0;
}
