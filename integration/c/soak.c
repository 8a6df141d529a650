/* A soak of the hooked calls: THREADS threads each make random sequences
 * of reads, preads, readv, copies (overlapping ones too), writes and
 * writev checked by reading back, reallocs, frees, fresh mappings and
 * munmaps, over buffers of their own and shared buffers read by all;
 * thread 0 now and then forks a child that checks its buffers, and a
 * SIGALRM handler at 1 kHz reads a shared elided copy. Every buffer has a
 * shadow kept with plain instructions (`rep movsb`, never a hooked call):
 * the reference every byte is compared with.
 *
 * Prints operations, bytes compared, mismatches, peak RSS and the peak
 * count of mappings; exits 1 on any mismatch.
 * Usage: soak DIR SECONDS THREADS SEED */
#include "common.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>

#define MIB (1 << 20)
#define FILE_LEN (16 * MIB)
#define SLOTS 6
#define SHARED 4
#define MAXLEN MIB

struct buf {
    unsigned char *p, *shadow;
    size_t len;
    int mapped; /* from mmap (else malloc) */
};

static unsigned char *file;  /* the file's bytes, in plain memory */
static struct buf shared[SHARED];
static int file_fd;
static const char *dir;
static double deadline;
/* SEED: the file's bytes and every worker's sequence of operations. */
static uint64_t seed_all;
static volatile long total_ops, total_compared, total_bad, forks;
static pthread_mutex_t totals = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t alarm_bad, alarms;

static void plain_copy(void *d, const void *s, size_t n) {
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

static void plain_move(unsigned char *d, const unsigned char *s, size_t n) {
    if (d <= s || d >= s + n) {
        for (size_t i = 0; i < n; i++) ((volatile unsigned char *)d)[i] = s[i];
    } else {
        for (size_t i = n; i-- > 0;) ((volatile unsigned char *)d)[i] = s[i];
    }
}

static long differ(const unsigned char *a, const unsigned char *b, size_t n) {
    long bad = 0;
    for (size_t i = 0; i < n; i++) bad += a[i] != b[i];
    return bad;
}

static void make(struct buf *b, size_t len, int mapped) {
    b->len = len;
    b->mapped = mapped;
    if (mapped) {
        b->p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (b->p == MAP_FAILED) die("mmap");
    } else {
        b->p = malloc(len);
        if (!b->p) die("malloc");
        memset(b->p, 0, len);
    }
    b->shadow = calloc(1, len);
    if (!b->shadow) die("calloc");
}

static void drop(struct buf *b) {
    if (b->mapped) munmap(b->p, b->len);
    else free(b->p);
    free(b->shadow);
}

static size_t pick_len(uint64_t *x) {
    static const size_t lens[] = {64 << 10, 128 << 10, 300000, 512 << 10, MIB};
    return lens[next(x) % 5];
}

/* An output of `n` bytes at `p` to the thread's scratch file, read back in
 * pieces too small to be tracked, compared with the shadow. */
static long written(int fd, const unsigned char *p, const unsigned char *shadow, size_t n, int vec) {
    ssize_t r;
    if (vec) {
        struct iovec v[2] = {{(void *)p, n / 2}, {(void *)(p + n / 2), n - n / 2}};
        r = pwritev(fd, v, 2, 0);
    } else {
        r = pwrite(fd, p, n, 0);
    }
    if (r != (ssize_t)n) die("pwrite");
    unsigned char small[4000];
    long bad = 0;
    for (size_t at = 0; at < n; at += sizeof small) {
        size_t k = n - at < sizeof small ? n - at : sizeof small;
        if (pread(fd, small, k, (off_t)at) != (ssize_t)k) die("read back");
        bad += differ(small, shadow + at, k);
    }
    return bad;
}

/* In a forked child: every buffer of the forking thread, checked. */
static void check_in_child(struct buf *mine) {
    long bad = 0;
    for (int i = 0; i < SLOTS; i++) bad += differ(mine[i].p, mine[i].shadow, mine[i].len);
    for (int i = 0; i < SHARED; i++) bad += differ(shared[i].p, shared[i].shadow, shared[i].len);
    _exit(bad ? 1 : 0);
}

static void *worker(void *arg) {
    long id = (long)arg;
    uint64_t x = 0x9e3779b97f4a7c15ULL * (uint64_t)(id + 1) ^ seed_all;
    struct buf mine[SLOTS];
    for (int i = 0; i < SLOTS; i++) make(&mine[i], pick_len(&x), i % 3 == 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/scratch.%ld", dir, id);
    int scratch = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (scratch < 0) die("scratch");
    long ops = 0, compared = 0, bad = 0;
    while (mono_now() < deadline) {
        struct buf *b = &mine[next(&x) % SLOTS];
        size_t off = (next(&x) % 2) ? 0 : (next(&x) % 8) * 512;
        size_t n = b->len - off;
        if (n > (64 << 10)) n -= (next(&x) % 2) * (next(&x) % (n - (64 << 10)));
        size_t foff = (next(&x) % (FILE_LEN - MAXLEN)) & ~(size_t)(next(&x) % 2 ? 4095 : 0);
        switch (next(&x) % 12) {
        case 0: case 1: /* input */
            full_pread(file_fd, b->p + off, n, (off_t)foff);
            plain_copy(b->shadow + off, file + foff, n);
            break;
        case 2: { /* readv */
            struct iovec v[2] = {{b->p + off, n / 2}, {b->p + off + n / 2, n - n / 2}};
            if (preadv(file_fd, v, 2, (off_t)foff) != (ssize_t)n) die("preadv");
            plain_copy(b->shadow + off, file + foff, n);
            break;
        }
        case 3: case 4: { /* copy from another of mine, or a shared one */
            struct buf *s = next(&x) % 2 ? &shared[next(&x) % SHARED] : &mine[next(&x) % SLOTS];
            if (s == b) break;
            size_t k = n < s->len ? n : s->len;
            memcpy(b->p + off, s->p, k);
            plain_copy(b->shadow + off, s->shadow, k);
            break;
        }
        case 5: { /* overlapping move */
            size_t k = n / 2, by = (next(&x) % 4 + 1) * 4096;
            if (k + by > b->len) break;
            memmove(b->p + by, b->p, k);
            plain_move(b->shadow + by, b->shadow, k);
            break;
        }
        case 6: case 7: /* output, read back */
            bad += written(scratch, b->p + off, b->shadow + off, n, (int)(next(&x) % 2));
            compared += (long)n;
            break;
        case 8: /* look */
            bad += differ(b->p, b->shadow, b->len);
            compared += (long)b->len;
            break;
        case 9: { /* realloc (malloc'd) or a fresh mapping */
            size_t len = pick_len(&x);
            if (!b->mapped) {
                unsigned char *q = realloc(b->p, len);
                if (!q) die("realloc");
                unsigned char *sh = calloc(1, len);
                if (!sh) die("calloc");
                size_t keep = len < b->len ? len : b->len;
                plain_copy(sh, b->shadow, keep);
                if (len > b->len) memset(q + b->len, 0, len - b->len);
                free(b->shadow);
                b->p = q, b->shadow = sh, b->len = len;
            } else {
                drop(b);
                make(b, len, 1);
            }
            break;
        }
        case 10: /* free and allocate again */
            drop(b);
            make(b, pick_len(&x), (int)(next(&x) % 2));
            break;
        case 11:
            if (id == 0 && next(&x) % 8 == 0) {
                pid_t pid = fork();
                if (pid < 0) die("fork");
                if (pid == 0) check_in_child(mine);
                int st;
                if (waitpid(pid, &st, 0) != pid) die("waitpid");
                bad += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
                forks++;
            }
            break;
        }
        ops++;
    }
    for (int i = 0; i < SLOTS; i++) {
        bad += differ(mine[i].p, mine[i].shadow, mine[i].len);
        compared += (long)mine[i].len;
        drop(&mine[i]);
    }
    close(scratch);
    pthread_mutex_lock(&totals);
    total_ops += ops, total_compared += compared, total_bad += bad;
    pthread_mutex_unlock(&totals);
    return NULL;
}

static void on_alarm(int sig) {
    (void)sig;
    int saved = errno;
    size_t at = (size_t)(alarms % 97) * 4096;
    if (shared[0].p[at + 17] != shared[0].shadow[at + 17]) alarm_bad++;
    alarms++;
    errno = saved;
}

static int count_maps(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: soak DIR SECONDS THREADS SEED\n");
        return 2;
    }
    dir = argv[1];
    double seconds = atof(argv[2]);
    int threads = atoi(argv[3]);
    uint64_t seed = strtoull(argv[4], NULL, 10) | 1;
    seed_all = seed;
    file = malloc(FILE_LEN);
    if (!file) die("malloc");
    for (size_t i = 0; i < FILE_LEN; i++) file[i] = (unsigned char)(next(&seed) >> 24);
    char path[4096];
    snprintf(path, sizeof path, "%s/soak.in", dir);
    int w = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (w < 0) die("create");
    for (size_t at = 0; at < FILE_LEN; at += 4000) {
        size_t k = FILE_LEN - at < 4000 ? FILE_LEN - at : 4000;
        if (write(w, file + at, k) != (ssize_t)k) die("write");
    }
    close(w);
    file_fd = open(path, O_RDONLY);
    if (file_fd < 0) die("open");
    /* Shared buffers: input, then an elided copy of it. */
    unsigned char *in = malloc(MIB);
    if (!in) die("malloc");
    for (int i = 0; i < SHARED; i++) {
        make(&shared[i], MIB, 0);
        full_pread(file_fd, in, MIB, (off_t)i * MIB);
        memcpy(shared[i].p, in, MIB);
        plain_copy(shared[i].shadow, file + (size_t)i * MIB, MIB);
    }
    alarm_every(on_alarm, 1000);

    deadline = mono_now() + seconds;
    pthread_t t[64];
    if (threads < 1 || threads > 64) die("THREADS must be 1 to 64");
    for (long i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i)) die("pthread_create");
    int peak_maps = 0;
    while (mono_now() < deadline) {
        int m = count_maps();
        if (m > peak_maps) peak_maps = m;
        usleep(50000);
    }
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    alarm_stop();
    long bad = total_bad + alarm_bad;
    for (int i = 0; i < SHARED; i++) bad += differ(shared[i].p, shared[i].shadow, MIB);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("operations %ld, bytes compared %ld, forks %ld, alarms %d, mismatches %ld\n",
           total_ops, total_compared, forks, (int)alarms, bad);
    printf("peak rss %ld KiB, peak mappings %d\n", ru.ru_maxrss, peak_maps);
    return bad ? 1 : 0;
}
