/* Many threads copying at once, more than zio has private counter slots
 * (256), so both the private and the shared counting paths run, and the
 * exiting threads' counts are folded into the totals.
 *
 * usage: threads NTHREADS COPIES_PER_THREAD
 * Each copy is memcpy of 777 bytes. Prints a checksum of every thread's
 * final buffer. Built with -fno-builtin so the copies stay real calls.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEN 777

static pthread_barrier_t all_alive;
static long copies;

struct job { unsigned char src[LEN], dst[LEN]; uint64_t sum; int id; };

static void *work(void *arg) {
    struct job *j = arg;
    for (int i = 0; i < LEN; i++) j->src[i] = (unsigned char)(i * 7 + j->id);
    /* Everyone holds a counter slot at the same time before copying. */
    pthread_barrier_wait(&all_alive);
    for (long k = 0; k < copies; k++) {
        memcpy(j->dst, j->src, LEN);
        j->src[k % LEN]++;
    }
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < LEN; i++) h = (h ^ j->dst[i]) * 1099511628211ULL;
    j->sum = h;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: threads N COPIES\n"); return 2; }
    int n = atoi(argv[1]);
    copies = atol(argv[2]);
    struct job *jobs = calloc(n, sizeof *jobs);
    pthread_t *t = calloc(n, sizeof *t);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_barrier_init(&all_alive, NULL, n);
    for (int i = 0; i < n; i++) {
        jobs[i].id = i;
        if (pthread_create(&t[i], &attr, work, &jobs[i])) { perror("pthread_create"); return 1; }
    }
    uint64_t all = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        all ^= jobs[i].sum + (uint64_t)i;
    }
    printf("threads=%d copies=%ld sum=%016llx\n", n, copies, (unsigned long long)all);
    return 0;
}
