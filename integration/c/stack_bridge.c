/* stack_bridge: a user-space IO stack and its program, talking to zio
 * through the bridge contract of zio.h (integration/tests/bridge.rs).
 *
 * usage: stack_bridge OUT_FILE
 *
 * The "stack" owns a page-aligned receive ring of SLOTS slots and fills
 * each with a message by its own stores (no input call, so zio cannot know
 * it holds IO data), then lends the slot (zio_register). The program
 * copies the message into a buffer, and that buffer into a second one
 * (elided under zio: copies of lent memory), writes the first copy to
 * OUT_FILE with write() (sent from the ring), and hands the second to the
 * stack's transmit: zio_resolve, a gather into the stack's transmit
 * buffer, zio_resolve_end, and a write of that buffer to OUT_FILE. Before
 * the stack overwrites a slot it releases it (zio_release), while the
 * program still keeps the second copies of the last KEEP rounds (more than
 * the ring holds); it checks every kept copy at the end and prints one
 * line per check, the same with zio and without.
 *
 * Under zio it also checks the contract's answers to bad arguments.
 * Without zio the functions are absent (dlsym answers null): the stack
 * then lends nothing, releases nothing and gathers from the buffer itself.
 * Built with -fno-builtin so that memcpy stays a real call.
 */
#include "common.h"
#include "../../libzio/include/zio.h"
#include <dlfcn.h>
#include <sys/mman.h>

#define SLOT (256u << 10)
#define SLOTS 4
#define ROUNDS 64
#define KEEP 8
#define SEGS 16

static int (*reg)(const void *, size_t);
static int (*rel)(const void *, size_t, uint64_t);
static size_t (*resolve)(const void *, size_t, struct zio_seg *, size_t, struct zio_resolution *);
static void (*resolve_end)(struct zio_resolution *);

static uint64_t mix(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The stack receives message `round` into `slot`. */
static void receive(unsigned char *slot, unsigned round) {
    uint64_t *w = (uint64_t *)slot;
    for (size_t i = 0; i < SLOT / 8; i++) w[i] = mix(((uint64_t)round << 32) | i);
}

static int holds(const unsigned char *buf, unsigned round) {
    const uint64_t *w = (const uint64_t *)buf;
    for (size_t i = 0; i < SLOT / 8; i++)
        if (w[i] != mix(((uint64_t)round << 32) | i)) return 0;
    return 1;
}

/* The stack's transmit copy of the program buffer `buf` into `tx`. */
static void transmit(unsigned char *tx, const unsigned char *buf, size_t n) {
    if (!resolve) {
        memcpy(tx, buf, n);
        return;
    }
    struct zio_seg segs[SEGS];
    struct zio_resolution res;
    size_t k = resolve(buf, n, segs, SEGS, &res), at = 0;
    for (size_t i = 0; i < k; i++) {
        memcpy(tx + at, segs[i].base, segs[i].len);
        at += segs[i].len;
    }
    resolve_end(&res);
    if (at != n) {
        fprintf(stderr, "stack_bridge: resolve covered %zu of %zu bytes\n", at, n);
        exit(1);
    }
}

/* Bad arguments get plain answers, not a crash: nothing lent for a null,
 * unmapped or overlong range, nothing to release or resolve there, and
 * resolutions never filled, or ended twice, end harmlessly. Exits 1 on a
 * wrong answer (only with zio: without it the functions are absent). */
static void bad_arguments(unsigned char *buf) {
    void *gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (gone == MAP_FAILED || munmap(gone, 4096)) die("mmap");
    struct zio_seg segs[SEGS];
    struct zio_resolution res, junk = {.npins = 3, .pins = {7, 1u << 30, 12345}, .resolved = 99};
    const char *wrong = NULL;
    if (reg(NULL, SLOT)) wrong = "zio_register(NULL)";
    else if (reg(gone, 4096)) wrong = "zio_register(unmapped)";
    else if (reg(buf, (size_t)1 << 46)) wrong = "zio_register(past the mapping)";
    else if (reg(buf, SIZE_MAX)) wrong = "zio_register(wrapping)";
    else if (rel(NULL, SLOT, 0) != ZIO_RELEASED) wrong = "zio_release(NULL)";
    else if (resolve(NULL, 0, segs, SEGS, &res)) wrong = "zio_resolve(len 0)";
    else if (resolve(buf, SLOT, NULL, SEGS, &res)) wrong = "zio_resolve(segs NULL)";
    else if (resolve(buf, SLOT, segs, SEGS, NULL)) wrong = "zio_resolve(res NULL)";
    else if (resolve(NULL, SLOT, segs, SEGS, &res) != 1 || segs[0].base != NULL) wrong = "zio_resolve(NULL)";
    if (wrong) {
        fprintf(stderr, "stack_bridge: %s answered wrong\n", wrong);
        exit(1);
    }
    resolve_end(&res);
    resolve_end(&res);
    resolve_end(&junk);
    resolve_end(NULL);
}

/* The stack takes `slot` back before it changes it. */
static void take_back(unsigned char *slot) {
    while (rel && rel(slot, SLOT, 1000000) != ZIO_RELEASED) {
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: stack_bridge OUT_FILE\n");
        return 2;
    }
    alarm(60);
    unsigned (*version)(void) = (unsigned (*)(void))dlsym(RTLD_DEFAULT, "zio_contract_version");
    if (version && version() / 100 == ZIO_CONTRACT_VERSION / 100) {
        reg = (int (*)(const void *, size_t))dlsym(RTLD_DEFAULT, "zio_register");
        rel = (int (*)(const void *, size_t, uint64_t))dlsym(RTLD_DEFAULT, "zio_release");
        resolve = (size_t(*)(const void *, size_t, struct zio_seg *, size_t,
                             struct zio_resolution *))dlsym(RTLD_DEFAULT, "zio_resolve");
        resolve_end = (void (*)(struct zio_resolution *))dlsym(RTLD_DEFAULT, "zio_resolve_end");
        if (!reg || !rel || !resolve || !resolve_end) {
            fprintf(stderr, "stack_bridge: zio_contract_version without the contract\n");
            return 1;
        }
    }
    int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) die("open");
    unsigned char *ring, *tx;
    if (posix_memalign((void **)&ring, 4096, SLOTS * SLOT) || posix_memalign((void **)&tx, 4096, SLOT))
        die("posix_memalign");
    unsigned char *kept[KEEP] = {0};
    for (unsigned r = 0; r < ROUNDS; r++) {
        unsigned char *slot = ring + (r % SLOTS) * SLOT;
        if (r >= SLOTS) take_back(slot);
        receive(slot, r);
        if (reg) reg(slot, SLOT);
        unsigned char *a, *b;
        if (posix_memalign((void **)&a, 4096, SLOT) || posix_memalign((void **)&b, 4096, SLOT))
            die("posix_memalign");
        memcpy(a, slot, SLOT);
        memcpy(b, a, SLOT);
        full_write(out, a, SLOT);
        free(a);
        transmit(tx, b, SLOT);
        full_write(out, tx, SLOT);
        free(kept[r % KEEP]);
        kept[r % KEEP] = b;
    }
    for (unsigned s = 0; s < SLOTS; s++) take_back(ring + s * SLOT);
    /* Once zio's engine runs (bad arguments must not reach it harmfully). */
    if (reg) bad_arguments(tx);
    /* The stack reuses its ring for something else: the kept copies must
     * not notice. */
    memset(ring, 0xA5, SLOTS * SLOT);
    int bad = 0;
    for (unsigned r = ROUNDS - KEEP; r < ROUNDS; r++) {
        int ok = holds(kept[r % KEEP], r);
        printf("round %u kept copy %s\n", r, ok ? "intact" : "DIFFERS");
        bad |= !ok;
    }
    if (close(out)) die("close");
    printf("done\n");
    return bad;
}
