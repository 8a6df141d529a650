/* A server's start-up in miniature: elides a copy of FILE's first MiB, then
 * (mode "fork") forks a worker that drops to nobody and does the same, as
 * nginx's master and workers do; (mode "retitle") writes its process
 * title over its environment, as nginx does, and forks a worker that keeps
 * its privileges; (mode "copy") only the copy. Prints the effective uid and
 * a checksum of each copy.
 *
 * Usage: drop_privileges copy|fork|retitle FILE */
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

extern char **environ;

/* What nginx, PostgreSQL and Redis do to set their process title: the
 * environment moves to the heap and the block that held argv and it is
 * written over. */
static void retitle(char **argv) {
    char *end = argv[0] + strlen(argv[0]);
    for (int i = 1; argv[i]; i++)
        if (argv[i] == end + 1) end = argv[i] + strlen(argv[i]);
    int n = 0;
    for (; environ[n]; n++)
        if (environ[n] == end + 1) end = environ[n] + strlen(environ[n]);
    char **moved = malloc((n + 1) * sizeof *moved);
    if (!moved) die("malloc");
    for (int i = 0; i < n; i++)
        if (!(moved[i] = strdup(environ[i]))) die("strdup");
    moved[n] = NULL;
    environ = moved;
    memset(argv[0], 0, end - argv[0]);
    strncpy(argv[0], "drop_privileges: master", end - argv[0]);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: drop_privileges copy|fork|retitle FILE\n");
        return 2;
    }
    const char *file = strdup(argv[2]); /* argv is written over below */
    int retitled = strcmp(argv[1], "retitle") == 0;
    copy_once(file, "master");
    if (retitled) retitle(argv);
    if (strcmp(argv[1], "fork") != 0 && !retitled) return 0;
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        if (retitled) {
            copy_once(file, "worker");
            exit(0);
        }
        if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) die("drop privileges");
        copy_once(file, "worker");
        exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) die("worker");
    return 0;
}
