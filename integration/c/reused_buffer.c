/* One reused input buffer, copied twice and sent every round
 * (integration/tests/redirect.rs).
 *
 * usage: reused_buffer MESSAGES OUTPUT
 *
 * MESSAGES holds ROUNDS messages of 512 KiB (the test writes it). Each
 * round preads the next message into the same page-aligned static buffer
 * `in`, in two calls (the first 256 KiB and 1000 bytes, then the rest, as
 * a message read from a socket arrives in parts that end inside a page),
 * copies it in -> c1 -> c2 (static,
 * page-aligned, reused: under zio both copies are elided), and writes c2 to
 * OUTPUT (under zio: substituted from the original).
 *
 * From the second round on the buffer's old message is still needed by
 * c1 and c2 when the next one arrives: zio either backs it up inside the
 * pread (ZIO_REDIRECT_INPUT=0) or lands the new message in its own memory
 * and leaves `in` unmapped (the default).
 *
 * At the end the program reads c1 and c2 (forcing faults on their elided
 * pages) and compares them with the last message, read again into a
 * separate buffer, and prints their checksums; a mismatch is named on
 * stderr and makes the exit status 1. Built with -fno-builtin so that the
 * copies stay real calls; alarm() bounds the run.
 */
#include "common.h"

#include <fcntl.h>
#include <stdint.h>

#define CHUNK (512u << 10)
#define FIRST ((256u << 10) + 1000)
#define ROUNDS 200

static unsigned char in[CHUNK] __attribute__((aligned(4096)));
static unsigned char c1[CHUNK] __attribute__((aligned(4096)));
static unsigned char c2[CHUNK] __attribute__((aligned(4096)));
static unsigned char last[CHUNK] __attribute__((aligned(4096)));

static uint64_t fnv(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: reused_buffer MESSAGES OUTPUT\n");
        return 2;
    }
    alarm(20); /* never hang, whatever happens: SIGALRM ends the run */
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) die("open messages");
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) die("open output");

    for (int r = 0; r < ROUNDS; r++) {
        off_t at = (off_t)r * CHUNK;
        full_pread(fd, in, FIRST, at);
        full_pread(fd, in + FIRST, CHUNK - FIRST, at + FIRST);
        memcpy(c1, in, CHUNK);
        memcpy(c2, c1, CHUNK);
        full_write(out, c2, CHUNK);
    }
    if (close(out) != 0) die("close output");

    /* Only now read the copies: they must hold the last message. */
    int failed = 0;
    full_pread(fd, last, CHUNK, (off_t)(ROUNDS - 1) * CHUNK);
    close(fd);
    uint64_t want = fnv(last, CHUNK);
    uint64_t h1 = fnv(c1, CHUNK), h2 = fnv(c2, CHUNK);
    if (memcmp(c1, last, CHUNK) != 0 || h1 != want) {
        fprintf(stderr, "c1 differs from the last message\n");
        failed = 1;
    }
    if (memcmp(c2, last, CHUNK) != 0 || h2 != want) {
        fprintf(stderr, "c2 differs from the last message\n");
        failed = 1;
    }
    printf("rounds %d\n", ROUNDS);
    printf("c1 %016llx\n", (unsigned long long)h1);
    printf("c2 %016llx\n", (unsigned long long)h2);
    printf("last message %016llx\n", (unsigned long long)want);
    printf("%s\n", failed ? "FAILED" : "done");
    return failed;
}
