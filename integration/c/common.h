/* Helpers the test programs share (each program is one .c file that
 * includes this; integration/src/lib.rs compiles it alone).
 *
 * die() names the program and the failed step and exits with status 2, so a
 * test can tell a broken set-up from a wrong result (status 1). The full_*
 * calls loop over short transfers and EINTR, and die on anything else.
 * Include it first: it asks for the GNU extensions. */
#ifndef ZIO_TEST_COMMON_H
#define ZIO_TEST_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <signal.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static inline void die(const char *what) {
    fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
    exit(2);
}

static inline void full_write(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("write");
        p += r;
        n -= (size_t)r;
    }
}

static inline void full_pread(int fd, unsigned char *p, size_t n, off_t off) {
    while (n) {
        ssize_t r = pread(fd, p, n, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("pread");
        p += r;
        n -= (size_t)r;
        off += r;
    }
}

/* Stops the timer alarm_every() started. */
static inline void alarm_stop(void) {
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
}

/* xorshift64: the next value of the generator at `x` (never 0 from a
 * non-zero start). */
static inline uint64_t next(uint64_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* FNV-1a: where a hash starts, and `n` more bytes at `p` added to `h`. */
#define FNV_START 0xcbf29ce484222325ULL

static inline uint64_t fnv_add(uint64_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* The hash of a whole file, read in pieces too small for zio to track, so
 * that checking a file changes nothing zio does. */
static inline uint64_t fnv_file(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("open to hash");
    uint64_t h = FNV_START;
    unsigned char small[4000];
    ssize_t r;
    while ((r = read(fd, small, sizeof small)) > 0) h = fnv_add(h, small, (size_t)r);
    close(fd);
    return h;
}

/* Monotonic seconds. */
static inline double mono_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* SIGALRM to `handler` every `usec` microseconds (SA_RESTART), until
 * alarm_stop(). */
static inline void alarm_every(void (*handler)(int), long usec) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGALRM, &sa, NULL)) die("sigaction");
    struct itimerval it = {{0, usec}, {0, usec}};
    if (setitimer(ITIMER_REAL, &it, NULL)) die("setitimer");
}

#endif
