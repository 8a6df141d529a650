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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
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

#endif
