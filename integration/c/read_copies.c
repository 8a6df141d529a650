/* A server that reads every byte it copies (integration/tests/policy.rs).
 *
 * usage: read_copies INPUT OUTPUT MESSAGES static|malloc
 *
 * Each message preads 512 KiB of INPUT into the input buffer (one static,
 * page-aligned buffer reused for every message, or a fresh malloc per
 * message), copies it into a fresh malloc'd buffer, sums every byte of
 * the copy (as a server parsing what it copied would), pwrites the copy to
 * one of 8 slots of OUTPUT and frees what it malloc'd. Under zio the policy
 * soon refuses these copies: eliding them costs a fault per page. At the
 * end it prints the sum and the checksum of OUTPUT, read back. */
#include "common.h"

#define N (512 << 10)
#define SLOTS 8

static unsigned char in_static[N] __attribute__((aligned(4096)));

int main(int argc, char **argv) {
    if (argc != 5)
        die("usage: read_copies INPUT OUTPUT MESSAGES static|malloc");
    int in = open(argv[1], O_RDONLY);
    int out = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
    long messages = atol(argv[3]);
    int fresh = !strcmp(argv[4], "malloc");
    if (in < 0 || out < 0 || messages < 1 || (!fresh && strcmp(argv[4], "static")))
        die("arguments");
    uint64_t sum = 0;
    for (long m = 0; m < messages; m++) {
        unsigned char *buf = fresh ? malloc(N) : in_static;
        unsigned char *copy = malloc(N);
        if (!buf || !copy)
            die("malloc");
        full_pread(in, buf, N, (m % SLOTS) * 4096);
        memcpy(copy, buf, N);
        const uint64_t *w = (const uint64_t *)copy;
        for (size_t i = 0; i < N / 8; i++)
            sum = sum * 31 + w[i];
        if (pwrite(out, copy, N, (m % SLOTS) * (off_t)N) != N)
            die("pwrite");
        free(copy);
        if (fresh)
            free(buf);
    }
    close(out);
    printf("sum %016llx\n", (unsigned long long)sum);
    printf("output %016llx\n", (unsigned long long)fnv_file(argv[2]));
    return 0;
}
