/* fork() right after an elided copy, with an atfork handler that copies the
 * same IO data inside fork. Both processes compare the elided copy with the
 * handler's copy (XOR sum 0 = equal). usage: atfork FILE (at least 1 MiB) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/wait.h>
static char *in, *buf2;
static void prep(void) { memcpy(buf2, in, 1 << 20); free(malloc(100)); }
int main(int argc, char **argv) {
    if (argc != 2) return 2;
    in = malloc(1 << 20); buf2 = malloc(1 << 20);
    char *c = malloc(1 << 20);
    int fd = open(argv[1], O_RDONLY);
    read(fd, in, 1 << 20);
    memcpy(c, in, 1 << 20);          /* elided: the engine is busy */
    pthread_atfork(prep, NULL, NULL); /* copies tracked data inside fork */
    pid_t p = fork();
    if (p == 0) { unsigned s = 0; for (int i = 0; i < 1 << 20; i++) s += (unsigned char)c[i] ^ (unsigned char)buf2[i]; printf("child %u\n", s); fflush(stdout); _exit(0); }
    waitpid(p, NULL, 0);
    unsigned s = 0; for (int i = 0; i < 1 << 20; i++) s += (unsigned char)c[i] ^ (unsigned char)buf2[i];
    printf("parent %u\n", s);
    return 0;
}
