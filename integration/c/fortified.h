/* glibc's fortified entry points, declared for the test programs that call
 * them (all_hooks.c, passthrough_alloc.c). glibc exports them; its headers
 * declare them only when _FORTIFY_SOURCE rewrites calls, so the programs
 * declare them here and call them directly, as fortified Debian binaries
 * do. Include it after the system headers. */
#ifndef ZIO_TEST_FORTIFIED_H
#define ZIO_TEST_FORTIFIED_H

#include <sys/socket.h>
#include <sys/types.h>

void *__memcpy_chk(void *, const void *, size_t, size_t);
void *__memmove_chk(void *, const void *, size_t, size_t);
void *__mempcpy_chk(void *, const void *, size_t, size_t);
ssize_t __read_chk(int, void *, size_t, size_t);
ssize_t __pread_chk(int, void *, size_t, off_t, size_t);
ssize_t __pread64_chk(int, void *, size_t, off64_t, size_t);
ssize_t __recv_chk(int, void *, size_t, size_t, int);
ssize_t __recvfrom_chk(int, void *, size_t, size_t, int, struct sockaddr *, socklen_t *);

#endif
