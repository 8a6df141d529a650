/* A server's start-up in miniature: elides a copy of FILE's first MiB, then
 * (mode "fork") forks a worker that drops to nobody and does the same, as
 * nginx's master and workers do; (mode "copy") only the copy. Prints the
 * effective uid and a checksum of each copy.
 *
 * Usage: drop_privileges copy|fork FILE */
#include "common.h"

#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <sys/wait.h>

#define MIB (1 << 20)

static void copy_once(const char *path, const char *who) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("open");
    unsigned char *src = malloc(MIB), *dst = malloc(MIB);
    if (!src || !dst) die("malloc");
    full_pread(fd, src, MIB, 0);
    memcpy(dst, src, MIB);
    uint64_t h = fnv_add(FNV_START, dst, MIB);
    printf("%s euid %d sum %016llx\n", who, (int)geteuid(), (unsigned long long)h);
    fflush(stdout);
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: drop_privileges copy|fork FILE\n");
        return 2;
    }
    copy_once(argv[2], "master");
    if (strcmp(argv[1], "fork") != 0) return 0;
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) die("drop privileges");
        copy_once(argv[2], "worker");
        exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) die("worker");
    return 0;
}
