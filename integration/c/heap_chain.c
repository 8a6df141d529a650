/* A server's copies along fresh heap chunks (integration/tests/heap_chain.rs).
 *
 * usage: heap_chain INPUT OUTPUT MESSAGES [SIZE]
 *
 * Each message preads SIZE bytes (512 KiB unless given) of INPUT into a
 * buffer malloc'd once, then makes 5 chained copies, each into a fresh
 * malloc of SIZE (glibc hands
 * out 16-byte-aligned heap chunks, not pages), freeing the previous one
 * right after the next copy, pwrites the last copy to one of 8 slots of
 * OUTPUT and frees it. The chunks sit at the top of glibc's main heap,
 * which it trims after every message and grows again at the next: the
 * memory under the first copies is unmapped and mapped again each time.
 * At 64 KiB a chunk has 15 whole pages, too few to elide into.
 * The program never reads a copy. At the end it prints the checksum of
 * OUTPUT, read back, and on stderr its number of threads. */
#include "common.h"

#define COPIES 5
#define SLOTS 8

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5)
        die("usage: heap_chain INPUT OUTPUT MESSAGES [SIZE]");
    int in = open(argv[1], O_RDONLY);
    int out = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
    long messages = atol(argv[3]);
    long N = argc == 5 ? atol(argv[4]) : 512 << 10;
    if (in < 0 || out < 0 || messages < 1 || N < 1)
        die("open");
    unsigned char *buf = malloc(N);
    if (!buf)
        die("malloc");
    for (long m = 0; m < messages; m++) {
        full_pread(in, buf, N, (m % SLOTS) * 4096);
        unsigned char *src = buf, *held = NULL;
        for (int c = 0; c < COPIES; c++) {
            unsigned char *d = malloc(N);
            if (!d)
                die("malloc");
            memcpy(d, src, N);
            free(held);
            held = d;
            src = d;
        }
        if (pwrite(out, src, N, (m % SLOTS) * (off_t)N) != N)
            die("pwrite");
        free(held);
    }
    free(buf);
    close(out);
    printf("%016llx\n", (unsigned long long)fnv_file(argv[2]));
    FILE *st = fopen("/proc/self/status", "r");
    char line[256];
    while (st && fgets(line, sizeof line, st))
        if (!strncmp(line, "Threads:", 8))
            fprintf(stderr, "threads %d\n", atoi(line + 8));
    if (st)
        fclose(st);
    return 0;
}
