/* A stand-in for libibverbs with no device behind it, for the test of
 * zio's interposition of memory-region registration (integration/tests/
 * pinned.rs): ibv_reg_mr returns a region describing the memory, as the
 * real library does after the device pinned it; ibv_dereg_mr frees it.
 * Built as a shared library the test program links. */
#include <stdint.h>
#include <stdlib.h>

struct ibv_mr {
    void *context, *pd, *addr;
    size_t length;
    uint32_t handle, lkey, rkey;
};

struct ibv_mr *ibv_reg_mr(void *pd, void *addr, size_t length, int access) {
    (void)access;
    struct ibv_mr *mr = calloc(1, sizeof *mr);
    if (mr) {
        mr->pd = pd;
        mr->addr = addr;
        mr->length = length;
    }
    return mr;
}

int ibv_dereg_mr(struct ibv_mr *mr) {
    free(mr);
    return 0;
}
