/* zio_counter, libzio's exported counter lookup, seen from a program
 * (integration/tests/counter.rs).
 *
 * usage: zio_counter SCRATCH_DIR
 *
 * Finds zio_counter with dlsym (null when zio is not loaded: prints
 * "absent"), then prints one `label name=value` line per lookup: before the
 * engine has started, after a 1 MiB pread and a 1 MiB memcpy of it (both
 * page-aligned, so the whole copy can be elided), and after reading one
 * byte of the copy (a fault). Also looks up an unknown name and a null
 * name. Checks the byte it read against the data and exits 1 if it differs.
 *
 * Built with -fno-builtin so that memcpy stays a real call.
 */
#include "common.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N (1u << 20)

typedef long long (*counter_fn)(const char *);

static counter_fn counter;

static void show(const char *label, const char *name) {
    printf("%s %s=%lld\n", label, name ? name : "(null)", counter(name));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: zio_counter SCRATCH_DIR\n");
        return 2;
    }
    alarm(20);
    counter = (counter_fn)dlsym(RTLD_DEFAULT, "zio_counter");
    if (!counter) {
        printf("absent\n");
        return 0;
    }
    show("start", "elided_copies");

    unsigned char *src, *dst;
    if (posix_memalign((void **)&src, 4096, N) || posix_memalign((void **)&dst, 4096, N))
        die("posix_memalign");
    for (unsigned i = 0; i < N; i++) src[i] = (unsigned char)(i * 131 + i / 4096);

    char path[4096];
    snprintf(path, sizeof path, "%s/data", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("open");
    if (write(fd, src, N) != (ssize_t)N) die("write");
    memset(src, 0, N);
    if (pread(fd, src, N, 0) != (ssize_t)N) die("pread");
    show("input", "elided_copies");
    memcpy(dst, src, N);
    show("copied", "elided_copies");
    show("copied", "elided_bytes");
    show("copied", "faults_missing");
    show("copied", "no_such_counter");
    show("copied", NULL);

    size_t at = 5 * 4096 + 77;
    unsigned char want = (unsigned char)(at * 131 + at / 4096);
    volatile unsigned char *p = dst;
    unsigned char got = p[at];
    show("touched", "faults_missing");
    show("touched", "pages_by_fault");
    if (got != want) {
        fprintf(stderr, "zio_counter: byte %zu of the copy is %u, expected %u\n", at, got, want);
        return 1;
    }
    close(fd);
    printf("done\n");
    return 0;
}
