/* A buffer registered as an RDMA memory region (ibv_reg_mr; linked against
 * fake_ibverbs.c) receives a copy of input, is deregistered, and receives
 * the same copy again; then the same with zio's own zio_pin and zio_unpin
 * (found with dlsym: absent without zio). Under zio the copies into pinned
 * memory must not be elided (the device would read the pages it pinned,
 * not the ones zio leaves), the others may be. Prints a checksum of the
 * buffer after each copy.
 * Usage: rdma_region FILE (of at least 1 MiB) */
#include "common.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>

#define MIB (1 << 20)

struct ibv_mr;
struct ibv_mr *ibv_reg_mr(void *pd, void *addr, size_t length, int access);
int ibv_dereg_mr(struct ibv_mr *mr);

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: rdma_region FILE\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) die("open");
    unsigned char *src = malloc(MIB), *buf = malloc(MIB);
    if (!src || !buf) die("malloc");
    memset(buf, 0, MIB);
    struct ibv_mr *mr = ibv_reg_mr(NULL, buf, MIB, 0);
    if (!mr) die("ibv_reg_mr");
    full_pread(fd, src, MIB, 0);
    memcpy(buf, src, MIB);
    printf("registered    %016llx\n", (unsigned long long)fnv_add(FNV_START, buf, MIB));
    if (ibv_dereg_mr(mr)) die("ibv_dereg_mr");
    full_pread(fd, src, MIB, 0);
    memcpy(buf, src, MIB);
    printf("deregistered  %016llx\n", (unsigned long long)fnv_add(FNV_START, buf, MIB));
    int (*pin)(const void *, size_t) = (int (*)(const void *, size_t))dlsym(RTLD_DEFAULT, "zio_pin");
    int (*unpin)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "zio_unpin");
    if (pin && pin(buf, MIB)) die("zio_pin");
    full_pread(fd, src, MIB, 0);
    memcpy(buf, src, MIB);
    printf("zio_pin       %016llx\n", (unsigned long long)fnv_add(FNV_START, buf, MIB));
    if (unpin && unpin(buf)) die("zio_unpin");
    full_pread(fd, src, MIB, 0);
    memcpy(buf, src, MIB);
    printf("zio_unpin     %016llx\n", (unsigned long long)fnv_add(FNV_START, buf, MIB));
    return 0;
}
