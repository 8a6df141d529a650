/* munmap, mremap and madvise on memory zio tracks, in anonymous mappings.
 *
 * usage: elide_mappings FILE   (FILE holds at least 2 MiB)
 * Each case reads IO data into a mapping (an original), makes an elided
 * copy of it in another mapping, then discards, moves or unmaps one side
 * and prints checksums of what the program can still see or write out.
 * The last case reads an elided copy that spans two mappings.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MB (1 << 20)

static uint64_t fnv(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static unsigned char *map(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    return p;
}

static void fill(int fd, unsigned char *p, size_t n, off_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, p + got, n - got, off + got);
        if (r <= 0) { perror("pread"); exit(1); }
        got += r;
    }
}

/* What the kernel gets when the buffer is written out (through a pipe). */
static uint64_t out_sum(const unsigned char *p, size_t n) {
    int pp[2];
    if (pipe(pp)) exit(1);
    uint64_t h = 1469598103934665603ULL;
    size_t done = 0;
    static unsigned char tmp[65536];
    while (done < n) {
        size_t k = n - done < 65536 ? n - done : 65536;
        if (write(pp[1], p + done, k) != (ssize_t)k) exit(1);
        if (read(pp[0], tmp, k) != (ssize_t)k) exit(1);
        for (size_t i = 0; i < k; i++) h = (h ^ tmp[i]) * 1099511628211ULL;
        done += k;
    }
    close(pp[0]);
    close(pp[1]);
    return h;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }

    /* 1. madvise(DONTNEED) of an original whose copy is still elided. */
    unsigned char *in = map(MB), *cp = map(MB);
    fill(fd, in, MB, 0);
    memcpy(cp, in, MB);
    madvise(in, MB, MADV_DONTNEED);
    printf("dontneed-original copy-out=%016llx in=%016llx\n",
           (unsigned long long)out_sum(cp, MB), (unsigned long long)fnv(in, MB));

    /* 2. munmap of an original whose copy is still elided. */
    fill(fd, in, MB, MB);
    memcpy(cp, in, MB);
    munmap(in, MB);
    printf("munmap-original copy-out=%016llx\n", (unsigned long long)out_sum(cp, MB));

    /* 3. mremap (move) of an elided copy: its bytes must move with it. */
    in = map(MB);
    fill(fd, in, MB, 0);
    unsigned char *cp2 = map(MB);
    memcpy(cp2, in, MB);
    unsigned char *moved = mremap(cp2, MB, 2 * MB, MREMAP_MAYMOVE);
    if (moved == MAP_FAILED) { perror("mremap"); return 1; }
    printf("mremap-copy out=%016llx sum=%016llx\n",
           (unsigned long long)out_sum(moved, MB), (unsigned long long)fnv(moved, MB));

    /* 4. madvise(DONTNEED) of an elided copy: it reads back as zeros. */
    memcpy(cp, in, MB);
    madvise(cp, MB / 2, MADV_DONTNEED);
    printf("dontneed-copy out=%016llx\n", (unsigned long long)out_sum(cp, MB));

    /* 5. munmap of an elided copy, then the original changes and is output. */
    unsigned char *cp3 = map(MB);
    memcpy(cp3, in, MB);
    munmap(cp3, MB);
    in[12345] ^= 0xff;
    printf("munmap-copy in-out=%016llx\n", (unsigned long long)out_sum(in, MB));

    /* 6. An elided copy over two mappings (the second half's flags differ,
     * so the kernel keeps them apart), read first on the last page of the
     * first: the fault's read-ahead runs into the second mapping. */
    unsigned char *two = map(MB);
    if (madvise(two + MB / 2, MB / 2, MADV_NOHUGEPAGE)) { perror("madvise"); return 1; }
    memcpy(two, in, MB);
    volatile unsigned char edge = two[MB / 2 - 4096];
    printf("two-mappings edge=%02x sum=%016llx\n", edge, (unsigned long long)fnv(two, MB));
    printf("done\n");
    return 0;
}
