/* io_uring with registered (pinned) buffers, the way a storage server uses
 * them: FILE is read in 1 MiB blocks, each copied into a registered buffer
 * and written with IORING_OP_WRITE_FIXED to OUTDIR/fixed.out; then each
 * block is read with pread into a registered buffer and copied out, and
 * the buffer is then overwritten with IORING_OP_READ_FIXED (through the
 * kernel's pin, past the page tables) while the copy still holds its old
 * bytes; the copies are written at the end to OUTDIR/readback.out. Between the phases the buffers
 * are unregistered and registered again elsewhere, through liburing and
 * through the raw system call; a copy made into a buffer before it is
 * registered must reach the file too. Last, the buffers unregistered, the
 * same copies into them are ordinary memory again.
 *
 * Prints a checksum of each output; run with and without zio.
 * Usage: uring_fixed FILE OUTDIR (FILE a multiple of 1 MiB, up to 64) */
#include "common.h"

#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <sys/syscall.h>

#define MIB (1 << 20)

static struct io_uring ring;

static void *big(void) {
    void *p;
    if (posix_memalign(&p, 4096, MIB)) die("posix_memalign");
    memset(p, 0, MIB);
    return p;
}

/* One fixed-buffer operation, waited for. */
static void fixed(int write, int fd, void *buf, int index, off_t off) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) die("get_sqe");
    if (write) io_uring_prep_write_fixed(sqe, fd, buf, MIB, off, index);
    else io_uring_prep_read_fixed(sqe, fd, buf, MIB, off, index);
    if (io_uring_submit(&ring) != 1) die("submit");
    struct io_uring_cqe *cqe;
    if (io_uring_wait_cqe(&ring, &cqe)) die("wait_cqe");
    if (cqe->res != MIB) {
        errno = cqe->res < 0 ? -cqe->res : EIO;
        die(write ? "write_fixed" : "read_fixed");
    }
    io_uring_cqe_seen(&ring, cqe);
}

static void register_raw(struct iovec *v, unsigned n) {
    if (syscall(SYS_io_uring_register, ring.ring_fd, IORING_REGISTER_BUFFERS, v, n) < 0)
        die("io_uring_register");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: uring_fixed FILE OUTDIR\n");
        return 2;
    }
    int in = open(argv[1], O_RDONLY);
    if (in < 0) die("open");
    off_t size = lseek(in, 0, SEEK_END);
    int blocks = (int)(size / MIB);
    if (blocks < 2 || blocks > 64) die("FILE must hold 2 to 64 MiB");
    char path[4096];
    snprintf(path, sizeof path, "%s/fixed.out", argv[2]);
    int out = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (out < 0) die("open fixed.out");
    int ret = io_uring_queue_init(8, &ring, 0);
    if (ret) { errno = -ret; die("io_uring_queue_init"); }

    unsigned char *src = big();
    struct iovec reg[2] = {{big(), MIB}, {big(), MIB}};

    /* A copy into the first buffer before it is registered. */
    full_pread(in, src, MIB, 0);
    memcpy(reg[0].iov_base, src, MIB);
    ret = io_uring_register_buffers(&ring, reg, 2);
    if (ret) { errno = -ret; die("register_buffers"); }
    fixed(1, out, reg[0].iov_base, 0, 0);

    /* Phase 1: read, copy into a registered buffer, WRITE_FIXED. */
    for (int b = 1; b < blocks; b++) {
        full_pread(in, src, MIB, (off_t)b * MIB);
        memcpy(reg[b % 2].iov_base, src, MIB);
        fixed(1, out, reg[b % 2].iov_base, b % 2, (off_t)b * MIB);
    }
    printf("write_fixed   %016llx\n", (unsigned long long)fnv_file(path));

    /* Registered again elsewhere, through the raw system call. */
    if (io_uring_unregister_buffers(&ring)) die("unregister");
    struct iovec reg2[2] = {{big(), MIB}, {big(), MIB}};
    register_raw(reg2, 2);

    /* Phase 2: input into a registered buffer, copied out, then the
     * buffer overwritten by READ_FIXED of another block. */
    unsigned char **copies = calloc((size_t)blocks, sizeof *copies);
    if (!copies) die("calloc");
    for (int b = 0; b < blocks; b++) {
        copies[b] = malloc(MIB);
        if (!copies[b]) die("malloc");
        full_pread(in, reg2[b % 2].iov_base, MIB, (off_t)b * MIB);
        memcpy(copies[b], reg2[b % 2].iov_base, MIB);
        fixed(0, in, reg2[b % 2].iov_base, b % 2, (off_t)(blocks - 1 - b) * MIB);
    }
    snprintf(path, sizeof path, "%s/readback.out", argv[2]);
    int back = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (back < 0) die("open readback.out");
    for (int b = 0; b < blocks; b++) full_write(back, copies[b], MIB);
    close(back);
    printf("read_fixed    %016llx\n", (unsigned long long)fnv_file(path));

    /* Phase 3: unregistered (raw system call), the buffers are ordinary
     * memory: copies into them and out of them again. */
    if (syscall(SYS_io_uring_register, ring.ring_fd, IORING_UNREGISTER_BUFFERS, NULL, 0) < 0)
        die("raw unregister");
    snprintf(path, sizeof path, "%s/plain.out", argv[2]);
    int plain = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (plain < 0) die("open plain.out");
    for (int b = 0; b < blocks; b++) {
        full_pread(in, src, MIB, (off_t)b * MIB);
        memcpy(reg2[b % 2].iov_base, src, MIB);
        full_write(plain, reg2[b % 2].iov_base, MIB);
    }
    close(plain);
    printf("unregistered  %016llx\n", (unsigned long long)fnv_file(path));
    printf("input         %016llx\n", (unsigned long long)fnv_file(argv[1]));
    io_uring_queue_exit(&ring);
    return 0;
}
