/* A buffer read from FILE (16 MiB) grows with realloc, as CPython's
 * whole-file read does, and is then read backwards; then it is copied
 * once, and the copy read. glibc moves such a large block's pages with
 * mremap, for free: under zio the realloc must cost that too (no copy of
 * the data, nothing faulted back), and the moved bytes must still be IO
 * data that a later copy can elide. Prints checksums; run with and
 * without zio. Usage: realloc_move FILE */
#include "common.h"

#include <fcntl.h>
#include <stdint.h>

#define LEN (16 << 20)

static uint64_t backwards(const unsigned char *p, size_t n) {
    uint64_t h = FNV_START;
    for (size_t i = n; i-- > 0;) h = fnv_add(h, p + i, 1);
    return h;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: realloc_move FILE\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) die("open");
    unsigned char *b = malloc(LEN);
    if (!b) die("malloc");
    full_pread(fd, b, LEN, 0);
    for (size_t grow = 2; grow <= 4; grow *= 2) {
        b = realloc(b, grow * LEN);
        if (!b) die("realloc");
    }
    printf("after realloc %016llx\n", (unsigned long long)backwards(b, LEN));
    unsigned char *c = malloc(LEN);
    if (!c) die("malloc");
    memcpy(c, b, LEN);
    printf("copied        %016llx\n", (unsigned long long)backwards(c, LEN));
    return 0;
}
