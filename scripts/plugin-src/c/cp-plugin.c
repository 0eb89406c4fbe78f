/*
 * cp-plugin SRC DST: copies the file SRC to DST and makes DST mode 0755, like the cp-plugin
 * that Velero's plugin images run as their entrypoint. Built with `gcc -static` so it runs in
 * an image with no libc, as uid 65532 with a read-only root: it writes only DST.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "cp-plugin: %s %s: %s\n", what, path, strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: cp-plugin SRC DST\n");
        return 2;
    }
    const char *src = argv[1], *dst = argv[2];
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return fail("open", src);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (out < 0)
        return fail("create", dst);
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail("read", src);
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return fail("write", dst);
            }
            off += w;
        }
    }
    /* The umask may have cut the create mode; the plugin must be executable by the Velero
     * server whatever user it runs as. */
    if (fchmod(out, 0755) < 0)
        return fail("chmod", dst);
    if (close(out) < 0)
        return fail("close", dst);
    close(in);
    return 0;
}
