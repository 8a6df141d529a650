/* zio.h: the C interface of libzio.so, for programs and user-space IO
 * stacks that talk to zio directly.
 *
 * Everything here is optional: a program runs the same, byte for byte,
 * whether zio is loaded or not. Find each function at run time with
 * dlsym(RTLD_DEFAULT, "zio_...") (null when zio is not preloaded), or
 * use the zio-stack-bridge crate from Rust, which does that for you.
 *
 * The IO-stack bridge contract (zio_register, zio_release, zio_resolve):
 * a stack whose buffers live in the program's memory (socket rings,
 * shared-memory samples) lends zio the bytes it received, so that the
 * program's copies of them can be elided as copies of a read() are, and
 * asks where a program buffer's bytes really are before it transmits it.
 *
 *   - zio_register: the stack received bytes into [addr, addr+len) and
 *     lends them to zio as an original. zio does not write-protect lent
 *     memory: the stack promises not to change or free it before
 *     zio_release. Lending right after lent memory extends it.
 *   - zio_release: before the stack overwrites, frees or unmaps lent
 *     memory. Every copy still reading it is given its bytes (backed up
 *     once, or rebuilt). While an output call in flight still sends from
 *     it, zio answers ZIO_HOLD after waiting about wait_ns: the stack keeps
 *     the memory as it is and calls again later.
 *   - zio_resolve: before the stack copies a program buffer into its
 *     transmit memory, where the buffer's bytes are: a list of segments to
 *     read in order, which add up to len. Elided copies point at their
 *     originals, which stay unchanged until zio_resolve_end.
 */
#ifndef ZIO_H
#define ZIO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the contract this header describes; zio_contract_version
 * returns the one the loaded libzio.so implements. A change of the major
 * number (version / 100) is incompatible. */
#define ZIO_CONTRACT_VERSION 100

/* Originals one resolution can pin (struct zio_resolution). */
#define ZIO_RESOLVE_PINS 8

/* zio_release: the memory is the stack's again. */
#define ZIO_RELEASED 0
/* zio_release: an output in flight still reads it; keep it, ask again. */
#define ZIO_HOLD 1

/* One run of bytes to read. */
struct zio_seg {
    const void *base;
    size_t len;
};

/* What a resolution holds until zio_resolve_end; filled by zio_resolve,
 * opaque to the caller. */
struct zio_resolution {
    uint32_t npins;
    uint32_t pins[ZIO_RESOLVE_PINS];
    size_t resolved;
};

/* The contract's version (ZIO_CONTRACT_VERSION of the library). */
unsigned zio_contract_version(void);

/* Lends [addr, addr+len), which holds bytes the stack received. Returns 1
 * if zio took it (release it with zio_release before changing it), 0 if
 * zio does not elide in this process (disabled, no userfaultfd), len is 0,
 * the range wraps, or its first or last byte cannot be read (a null or
 * stale pointer, a length past the buffer): then nothing needs releasing
 * (a release is harmless all the same). */
int zio_register(const void *addr, size_t len);

/* Takes [addr, addr+len) back from zio: ZIO_RELEASED once nothing reads it
 * any more, ZIO_HOLD if an output in flight still does after about wait_ns
 * nanoseconds. Safe for memory never lent. */
int zio_release(const void *addr, size_t len, uint64_t wait_ns);

/* Where the len bytes of the program buffer buf are: fills up to max
 * segments and returns how many (0 only for len or max 0). When zio cannot
 * say in max segments, or tracks nothing there, the answer is the buffer
 * itself (reading it is always right, possibly slower). Call
 * zio_resolve_end(res) once the bytes are gathered, before changing any
 * memory the segments name. */
size_t zio_resolve(const void *buf, size_t len, struct zio_seg *segs, size_t max,
                   struct zio_resolution *res);

/* Ends a resolution: the originals it pinned may change again. Ending one
 * twice, or one zio_resolve never filled, unpins nothing; res may be NULL. */
void zio_resolve_end(struct zio_resolution *res);

/* The current value of the zio counter name (as the ZIO_STATS=1 summary
 * prints them), or -1 for an unknown name or before the engine starts. */
long long zio_counter(const char *name);

/* Tells zio that [addr, addr+len) is used by the kernel or a device
 * through pinned pages (DMA buffers, a driver's own registration): zio
 * never elides into it or protects it until zio_unpin(addr). Returns 0,
 * or -1 for an empty or wrapping range. */
int zio_pin(const void *addr, size_t len);

/* The range zio_pin'ned at addr is ordinary memory again. Returns 0. */
int zio_unpin(const void *addr);

#ifdef __cplusplus
}
#endif

#endif /* ZIO_H */
