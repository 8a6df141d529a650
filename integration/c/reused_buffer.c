/* One reused input buffer, copied twice and sent every round, for the
 * ZIO_BACKUP_AHEAD tests (integration/tests/backup_ahead.rs).
 *
 * usage: reused_buffer MESSAGES OUTPUT [WAIT_US]
 *
 * MESSAGES holds ROUNDS messages of 512 KiB (the test writes it). Each
 * round preads the next message into the same page-aligned static buffer
 * `in`, copies it in -> c1 -> c2 (static, page-aligned, reused: under zio
 * both copies are elided and point at `in`), writes c2 to OUTPUT (under
 * zio: substituted from `in`), and then gives zio's collector thread time
 * to run before the next pread reuses `in`.
 *
 * From the second round on `in` is a reread input buffer with copies
 * depending on it when c2 goes out: with ZIO_BACKUP_AHEAD=1 zio's thread
 * backs `in` up for them right after that write; otherwise the next pread
 * does it.
 *
 * The time given: under zio (libzio's zio_counter is found with dlsym) the
 * program sleeps in steps of 50 us until zio's `backups_ahead` counter has
 * grown, for at most WAIT_US (default 1000) per round, so that a busy
 * machine delays a backup ahead rather than losing it, and reports on
 * stderr how many waits saw it grow. Without zio there is nothing to wait
 * for and it does not sleep.
 *
 * At the end the program reads c1 and c2 (forcing faults on their elided
 * pages) and compares them with the last message, read again into a
 * separate buffer, and prints their checksums; a mismatch is named on
 * stderr and makes the exit status 1. Built with -fno-builtin so that the
 * copies stay real calls; alarm() bounds the run.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (512u << 10)
#define ROUNDS 200

static unsigned char in[CHUNK] __attribute__((aligned(4096)));
static unsigned char c1[CHUNK] __attribute__((aligned(4096)));
static unsigned char c2[CHUNK] __attribute__((aligned(4096)));
static unsigned char last[CHUNK] __attribute__((aligned(4096)));

static void die(const char *what) {
    fprintf(stderr, "reused_buffer: %s: %s\n", what, strerror(errno));
    exit(2);
}

typedef long long (*counter_fn)(const char *);

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Waits at most wait_us for zio's backups_ahead to exceed `seen`; returns
 * its value. */
static long long wait_ahead(counter_fn counter, long long seen, unsigned wait_us) {
    uint64_t t0 = now_us();
    for (;;) {
        long long now = counter("backups_ahead");
        if (now > seen || now_us() - t0 >= wait_us) return now;
        usleep(50);
    }
}

static uint64_t fnv(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static void full_pread(int fd, unsigned char *p, size_t n, off_t off) {
    while (n) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("pread");
        p += r;
        n -= (size_t)r;
        off += r;
    }
}

static void full_write(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("write");
        p += r;
        n -= (size_t)r;
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: reused_buffer MESSAGES OUTPUT [WAIT_US]\n");
        return 2;
    }
    unsigned wait_us = argc > 3 ? (unsigned)atoi(argv[3]) : 1000;
    counter_fn counter = (counter_fn)dlsym(RTLD_DEFAULT, "zio_counter");
    alarm(20); /* never hang, whatever happens: SIGALRM ends the run */
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) die("open messages");
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) die("open output");

    long long ahead = 0;
    int grew = 0;
    uint64_t t0 = now_us();
    for (int r = 0; r < ROUNDS; r++) {
        full_pread(fd, in, CHUNK, (off_t)r * CHUNK);
        memcpy(c1, in, CHUNK);
        memcpy(c2, c1, CHUNK);
        full_write(out, c2, CHUNK);
        if (counter) {
            long long now = wait_ahead(counter, ahead, wait_us);
            grew += now > ahead;
            ahead = now;
        }
    }
    if (counter)
        fprintf(stderr, "reused_buffer: backups_ahead grew after %d of %d writes (%lld); %llu us\n",
                grew, ROUNDS, ahead, (unsigned long long)(now_us() - t0));
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
