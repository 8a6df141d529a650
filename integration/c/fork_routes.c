/* Children made every way a process can be copied or spawned, each right
 * after fresh elided copies, each reading every copied buffer: fork,
 * vfork, syscall(SYS_fork), syscall(SYS_clone) and syscall(SYS_clone3)
 * without CLONE_VM, clone() with and without CLONE_VM, and posix_spawn (a
 * `cat` fed the buffers through a pipe). Prints one line per route with
 * whether the child's view matched the file; run with and without zio.
 *
 * Usage: fork_routes FILE (of NBUF MiB) OUTDIR */
#include "common.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define MIB (1 << 20)
#define NBUF 4

extern char **environ;

static unsigned char *src[NBUF], *dst[NBUF];
static int result_pipe[2];

/* The hash of every copied buffer, in order. */
static uint64_t view(void) {
    uint64_t h = FNV_START;
    for (int i = 0; i < NBUF; i++) h = fnv_add(h, dst[i], MIB);
    return h;
}

/* The child's side: its view, through the pipe. */
static void report_view(void) {
    uint64_t h = view();
    if (write(result_pipe[1], &h, sizeof h) != sizeof h) _exit(3);
}

/* Fresh elided copies: the file's blocks read, then copied. */
static void refresh(int fd) {
    for (int i = 0; i < NBUF; i++) {
        full_pread(fd, src[i], MIB, (off_t)i * MIB);
        memcpy(dst[i], src[i], MIB);
    }
}

static int clone_child(void *arg) {
    (void)arg;
    report_view();
    return 0;
}

static void check(const char *route, pid_t pid, uint64_t want) {
    if (pid < 0) die(route);
    uint64_t got = 0;
    if (read(result_pipe[0], &got, sizeof got) != sizeof got) die("result");
    int st;
    if (waitpid(pid, &st, __WALL) != pid) die("waitpid");
    printf("%-22s %s\n", route, got == want ? "same bytes" : "DIFFERENT BYTES");
}

static pid_t spawn_cat(const char *out, int *to_child) {
    int p[2];
    if (pipe(p)) die("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[0], 0);
    posix_spawn_file_actions_addclose(&fa, p[1]);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char *argv[] = {"cat", NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "cat", &fa, NULL, argv, environ)) die("posix_spawn");
    posix_spawn_file_actions_destroy(&fa);
    close(p[0]);
    *to_child = p[1];
    return pid;
}

/* posix_spawn: the spawned `cat` receives the buffers and writes them to a
 * file, whose hash is then compared. */
static void spawn_route(const char *outdir, uint64_t want) {
    char out[4096];
    snprintf(out, sizeof out, "%s/spawned.out", outdir);
    int to_child;
    pid_t pid = spawn_cat(out, &to_child);
    for (int i = 0; i < NBUF; i++) full_write(to_child, dst[i], MIB);
    close(to_child);
    int st;
    if (waitpid(pid, &st, 0) != pid) die("waitpid cat");
    uint64_t h = fnv_file(out);
    printf("%-22s %s\n", "posix_spawn", h == want ? "same bytes" : "DIFFERENT BYTES");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fork_routes FILE OUTDIR\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) die("open");
    for (int i = 0; i < NBUF; i++) {
        src[i] = malloc(MIB);
        dst[i] = malloc(MIB);
        if (!src[i] || !dst[i]) die("malloc");
    }
    uint64_t want = fnv_file(argv[1]);
    if (pipe(result_pipe)) die("pipe");
    static unsigned char stack[256 << 10];
    void *top = stack + sizeof stack;
    fflush(stdout);
    pid_t pid;

    refresh(fd);
    pid = fork();
    if (pid == 0) { report_view(); _exit(0); }
    check("fork", pid, want);

    refresh(fd);
    pid = vfork();
    if (pid == 0) { report_view(); _exit(0); }
    check("vfork", pid, want);

    refresh(fd);
    pid = (pid_t)syscall(SYS_fork);
    if (pid == 0) { report_view(); _exit(0); }
    check("syscall(SYS_fork)", pid, want);

    refresh(fd);
    pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) { report_view(); _exit(0); }
    check("syscall(SYS_clone)", pid, want);

    refresh(fd);
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.exit_signal = SIGCHLD;
    pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
    if (pid == 0) { report_view(); _exit(0); }
    check("syscall(SYS_clone3)", pid, want);

    refresh(fd);
    check("clone", clone(clone_child, top, SIGCHLD, NULL), want);

    refresh(fd);
    check("clone(CLONE_VM)", clone(clone_child, top, CLONE_VM | SIGCHLD, NULL), want);

    refresh(fd);
    spawn_route(argv[2], want);

    printf("parent                 %s\n", view() == want ? "same bytes" : "DIFFERENT BYTES");
    printf("done\n");
    return 0;
}
