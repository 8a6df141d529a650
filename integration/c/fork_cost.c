/* Times fork: N children that exit at once, each waited for, and prints
 * the microseconds per fork. With a FILE, first reads it and copies it
 * COPIES times (elided copies under zio: records live during the forks),
 * and every child checks one byte of the last copy.
 *
 * usage: fork_cost N [FILE COPIES] */
#include "common.h"

#include <sys/stat.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: fork_cost N [FILE COPIES]\n");
        return 2;
    }
    int n = atoi(argv[1]);
    unsigned char *last = NULL, expect = 0;
    if (argc == 4) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) die("open");
        struct stat st;
        if (fstat(fd, &st) != 0) die("fstat");
        size_t len = (size_t)st.st_size;
        unsigned char *in = malloc(len);
        if (!in || len == 0) die("malloc");
        full_pread(fd, in, len, 0);
        for (int i = 0; i < atoi(argv[3]); i++) {
            last = malloc(len);
            if (!last) die("malloc");
            memcpy(last, in, len);
        }
        expect = in[len / 2];
        if (last) last += len / 2;
    }
    double t0 = mono_now();
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p < 0) die("fork");
        if (p == 0) _exit(last && *last != expect ? 1 : 0);
        int status;
        if (waitpid(p, &status, 0) != p) die("waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "fork_cost: a child saw the wrong byte\n");
            return 1;
        }
    }
    printf("%.1f\n", (mono_now() - t0) / n * 1e6);
    return 0;
}
