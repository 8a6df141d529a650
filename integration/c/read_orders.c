/* Reads a file into a buffer, copies it once, and reads the copy one byte
 * per page in the order named by argv[2]: forward, backward, stride (every
 * 16th page, 16 passes), random, or sparse (a random 1/64 of the pages).
 * Prints a hash of the bytes read. Under zio the copy is elided and the
 * reads fault: scripts/regress.py times this against the bound on what an
 * elided copy may cost (docs/design.md, "The regret bound").
 *
 * usage: read_orders FILE ORDER [REPEATS] */
#include "common.h"

#include <sys/stat.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: read_orders FILE ORDER [REPEATS]\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) die("open");
    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat");
    size_t n = (size_t)st.st_size, pages = n / 4096;
    if (pages == 0) {
        fprintf(stderr, "read_orders: file under a page\n");
        return 2;
    }
    int repeats = argc > 3 ? atoi(argv[3]) : 1;
    const char *order = argv[2];
    unsigned char *in = malloc(n), *copy = malloc(n);
    size_t *idx = malloc(pages * sizeof *idx);
    if (!in || !copy || !idx) die("malloc");
    full_pread(fd, in, n, 0);
    uint64_t h = FNV_START, seed = 0x9e3779b97f4a7c15ULL;
    for (int r = 0; r < repeats; r++) {
        size_t m = pages;
        if (!strcmp(order, "forward") || !strcmp(order, "backward")) {
            for (size_t i = 0; i < pages; i++) idx[i] = order[0] == 'f' ? i : pages - 1 - i;
        } else if (!strcmp(order, "stride")) {
            size_t k = 0;
            for (size_t o = 0; o < 16; o++)
                for (size_t i = o; i < pages; i += 16) idx[k++] = i;
        } else if (!strcmp(order, "random") || !strcmp(order, "sparse")) {
            for (size_t i = 0; i < pages; i++) idx[i] = i;
            for (size_t i = pages - 1; i > 0; i--) {
                size_t j = next(&seed) % (i + 1), t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
            }
            if (order[0] == 's') m = pages / 64 + 1;
        } else {
            fprintf(stderr, "read_orders: unknown order %s\n", order);
            return 2;
        }
        memcpy(copy, in, n);
        for (size_t i = 0; i < m; i++) h = fnv_add(h, copy + idx[i] * 4096 + (i % 4096), 1);
    }
    printf("%016llx\n", (unsigned long long)h);
    return 0;
}
