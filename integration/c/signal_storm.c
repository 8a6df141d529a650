/* SIGALRM at a high rate while the main thread copies, reads and writes
 * IO data (inside zio's hooks much of the time); the handler itself reads
 * an elided copy, copies out of it, writes from it, and reads input into
 * a buffer of its own. Every byte either side sees is checked against the
 * file. Prints the counts of checks and mismatches; run with and without
 * zio (the handled-signal count is printed apart, on stderr).
 *
 * Usage: signal_storm FILE (of 8 MiB) OUTFILE SECONDS */
#define _GNU_SOURCE
#include "common.h"

#include <sys/mman.h>

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#define MIB (1 << 20)
#define BLOCKS 8
#define SLICE (64 << 10)

static unsigned char *file;   /* the file, read in small pieces: never tracked */
static unsigned char *stable; /* an elided copy of block 0 the handler reads */
static unsigned char *hbuf;   /* the handler's own buffer */
static int in_fd, null_fd;
static volatile sig_atomic_t handled, bad_in_handler, missing_in_handler;
static volatile unsigned slice_at;

static void handler(int sig) {
    (void)sig;
    int saved = errno;
    size_t off = (size_t)(slice_at++ % (MIB / SLICE)) * SLICE;
    /* Touch the elided copy directly, copy out of it, write from it. A
     * page not resident before the touch is one the handler faulted on
     * (under zio: an elided page; counted on stderr, which may differ). */
    unsigned char resident = 1;
    uintptr_t page = ((uintptr_t)(stable + off + 123)) & ~(uintptr_t)4095;
    if (mincore((void *)page, 4096, &resident) == 0 && !(resident & 1)) missing_in_handler++;
    if (stable[off + 123] != file[off + 123]) bad_in_handler++;
    memcpy(hbuf, stable + off, SLICE);
    if (memcmp(hbuf, file + off, SLICE) != 0) bad_in_handler++;
    if (write(null_fd, stable + off, SLICE) != SLICE) bad_in_handler++;
    /* Input of its own, copied once more. */
    if (pread(in_fd, hbuf, SLICE, (off_t)off) != SLICE) bad_in_handler++;
    if (memcmp(hbuf, file + off, SLICE) != 0) bad_in_handler++;
    handled++;
    errno = saved;
}

/* The block `b` copied into `stable` again with the alarm blocked: the
 * handler then faults on fresh unmapped pages. */
static void refresh_stable(unsigned char *src) {
    sigset_t s, old;
    sigemptyset(&s);
    sigaddset(&s, SIGALRM);
    sigprocmask(SIG_BLOCK, &s, &old);
    full_pread(in_fd, src, MIB, 0);
    memcpy(stable, src, MIB);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: signal_storm FILE OUTFILE SECONDS\n");
        return 2;
    }
    in_fd = open(argv[1], O_RDONLY);
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    null_fd = open("/dev/null", O_WRONLY);
    if (in_fd < 0 || out < 0 || null_fd < 0) die("open");
    double seconds = atof(argv[3]);
    file = malloc((size_t)BLOCKS * MIB);
    stable = malloc(MIB);
    hbuf = malloc(SLICE);
    unsigned char *src = malloc(MIB), *dst = malloc(MIB);
    if (!file || !stable || !hbuf || !src || !dst) die("malloc");
    for (size_t at = 0; at < (size_t)BLOCKS * MIB; at += 4000) {
        size_t n = (size_t)BLOCKS * MIB - at < 4000 ? (size_t)BLOCKS * MIB - at : 4000;
        full_pread(in_fd, file + at, n, (off_t)at);
    }
    refresh_stable(src);

    alarm_every(handler, 200);

    long rounds = 0, checks = 0, bad = 0;
    double end = mono_now() + seconds;
    while (mono_now() < end) {
        int b = (int)(rounds % BLOCKS);
        full_pread(in_fd, src, MIB, (off_t)b * MIB);
        memcpy(dst, src, MIB);
        full_write(out, dst, MIB);
        size_t probe = (size_t)(rounds * 7919) % MIB;
        checks++;
        if (dst[probe] != file[(size_t)b * MIB + probe]) bad++;
        if (rounds % 16 == 15) refresh_stable(src);
        rounds++;
    }
    alarm_stop();
    sigaction(SIGALRM, &(struct sigaction){.sa_handler = SIG_IGN}, NULL);

    /* The output file, block by block, against the file. */
    close(out);
    int o = open(argv[2], O_RDONLY);
    if (o < 0) die("reopen");
    for (long r = 0; r < rounds; r++) {
        full_pread(o, src, MIB, (off_t)r * MIB);
        checks++;
        if (memcmp(src, file + (size_t)(r % BLOCKS) * MIB, MIB) != 0) bad++;
    }
    fprintf(stderr, "rounds %ld, signals handled %d\n", rounds, (int)handled);
    printf("mismatches in main %ld, in handler %d\n", bad, (int)bad_in_handler);
    printf("handler ran: %s\n", handled > 10 ? "yes" : "no");
    fprintf(stderr, "handler faulted on %d missing pages\n", (int)missing_in_handler);
    return bad || bad_in_handler ? 1 : 0;
}
